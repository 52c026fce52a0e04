import { francAll } from 'franc-min';
import { data } from 'franc-min/data.js';

/**
 * Which language a prompt is written in, for routes such as "German requests go to the German
 * model". Detection is franc-min's (https://github.com/wooorm/franc): trigram profiles of the
 * languages with 8 million speakers or more, in 150 kB of JavaScript; no network, no model file.
 */

/**
 * Characters detection reads. franc scores each trigram of its sample against some forty
 * language profiles: about 1.5 µs a character of Latin-script text, so a 2,000-character prompt
 * would take 3 ms. 200 characters take about 0.35 ms (0.04 ms in kana, Hangul or Han), and on the
 * excerpts in language.test.ts were right as often as 300 (99.9 % against 100 % of answers).
 * Callers need not collect more than this.
 */
export const languageSampleLength = 200;

/**
 * Scripts written by several languages (Latin, Cyrillic, Arabic, Devanagari) need this much text
 * before the trigram statistics mean anything; below it, franc's guess for a short English
 * sentence is as often Italian or Tagalog as English.
 */
const minimumSharedScriptLength = 40;

/**
 * How clearly the best language must beat the runner-up: franc's normalised score gap times the
 * square root of the sample's length, since the gap a chance resemblance produces shrinks as the
 * sample grows, like a standard error. With 0.3, detection answered for 97 % of the 60 to 100
 * character excerpts of the paragraphs in language.test.ts and for 99 % of the longer ones, and
 * was right on 99 % of its answers; Spanish/Portuguese and Swedish/Dutch are the near ties it
 * turns away.
 */
const minimumConfidence = 0.3;

/**
 * Letters that rule languages out. franc's trigram profiles alone took a sentence or two of
 * Ukrainian or Russian for Bulgarian, and of Turkish for Hausa or Indonesian, more often than
 * they made every other mistake together on the excerpts in language.test.ts. Alphabets settle
 * it: Bulgarian, Serbian, Bosnian and Ukrainian have no ы, э or ё; Russian, Bulgarian, Serbian
 * and Bosnian no і, ї, є or ґ; of the Latin-script languages franc knows, only Turkish and
 * Azerbaijani write ı and ğ. The letters must make up 1 % of the sample, so that a quoted name
 * does not decide.
 */
const ruledOutBy: readonly { readonly letters: RegExp; readonly languages: readonly string[] }[] = [
  { letters: /[ыэё]/g, languages: ['bul', 'ukr', 'srp', 'bos'] },
  { letters: /[іїєґ]/g, languages: ['rus', 'bul', 'srp', 'bos'] },
  {
    letters: /[ığ]/g,
    languages: Object.keys(data.Latin ?? {}).filter((name) => name !== 'tur' && name !== 'azj'),
  },
];

/**
 * ISO 639-3 codes franc returns, with their ISO 639-1 code; an individual language is given its
 * macrolanguage's code (cmn Mandarin → zh Chinese, arb Standard Arabic → ar). franc languages
 * without a two-letter code (Bhojpuri, Cebuano, Hmong, Ilocano, Madurese, Magahi, Maithili,
 * Saraiki) are left out: detection answers undefined for them.
 */
// biome-ignore format: a table reads best in columns
export const iso6391: Readonly<Record<string, string>> = {
  amh: 'am', arb: 'ar', azj: 'az', bel: 'be', ben: 'bn', bos: 'bs', bul: 'bg', ces: 'cs',
  ckb: 'ku', cmn: 'zh', deu: 'de', ell: 'el', eng: 'en', fra: 'fr', fuv: 'ff', guj: 'gu',
  hau: 'ha', hin: 'hi', hrv: 'hr', hun: 'hu', ibo: 'ig', ind: 'id', ita: 'it', jav: 'jv',
  jpn: 'ja', kan: 'kn', kaz: 'kk', kin: 'rw', koi: 'kv', kor: 'ko', lin: 'ln', mal: 'ml',
  mar: 'mr', mya: 'my', nld: 'nl', npi: 'ne', nya: 'ny', pan: 'pa', pbu: 'ps', pes: 'fa',
  plt: 'mg', pol: 'pl', por: 'pt', qug: 'qu', ron: 'ro', run: 'rn', rus: 'ru', sin: 'si',
  som: 'so', spa: 'es', srp: 'sr', sun: 'su', swe: 'sv', swh: 'sw', tam: 'ta', tel: 'te',
  tgl: 'tl', tha: 'th', tur: 'tr', ukr: 'uk', urd: 'ur', uzn: 'uz', vie: 'vi', yor: 'yo',
  zlm: 'ms', zul: 'zu', zyb: 'za',
};

/** Every ISO 639-1 code `detectLanguage` can return; a route's `language` must be one of them. */
export const detectableLanguages: ReadonlySet<string> = new Set(Object.values(iso6391));

/** franc's own minimum (10 characters) would turn away "こんにちは"; ours is per script, below. */
const francOptions = { minLength: 1 };

/**
 * The ISO 639-1 code of the language `text` is written in, or undefined when the text is too
 * short or too evenly split between languages to tell. Reads the first `languageSampleLength`
 * characters.
 *
 * @example
 * detectLanguage('Kannst du mir einen einfachen Plan für die ersten drei Tage vorschlagen?') // 'de'
 * detectLanguage('Hello!') // undefined: too short to tell English from Italian
 */
export function detectLanguage(text: string): string | undefined {
  const sample = text.length > languageSampleLength ? text.slice(0, languageSampleLength) : text;
  if (sample.trim().length === 0) return undefined;
  const ranked = francAll(sample, optionsFor(sample));
  const [best, runnerUp] = ranked;
  if (best === undefined || best[0] === 'und') return undefined;
  // A script only one language writes (kana, Hangul, Han, Greek, Thai …) names the language by
  // itself; franc answers with that one language and no runner-up.
  if (runnerUp !== undefined) {
    if (sample.length < minimumSharedScriptLength) return undefined;
    if ((best[1] - runnerUp[1]) * Math.sqrt(sample.length) < minimumConfidence) return undefined;
  }
  return iso6391[best[0]];
}

/** franc's options for `sample`: the languages its letters rule out are not considered. */
function optionsFor(sample: string): { minLength: number; ignore?: string[] } {
  const ignore: string[] = [];
  for (const { letters, languages } of ruledOutBy) {
    const found = sample.match(letters);
    if (found !== null && found.length * 100 >= sample.length) ignore.push(...languages);
  }
  return ignore.length === 0 ? francOptions : { minLength: 1, ignore };
}
