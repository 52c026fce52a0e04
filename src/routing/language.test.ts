import { data } from 'franc-min/data.js';
import { expressions } from 'franc-min/expressions.js';
import { describe, expect, test } from 'vitest';
import { detectLanguage, iso6391, languageSampleLength } from './language.js';

/** The same request (a trip to the mountains) in sixteen languages, written for these tests. */
const paragraphs: Record<string, string> = {
  en: `I am planning a trip to the mountains next month and would like some advice on what to pack. The weather there changes quickly, so I need clothes for both warm afternoons and cold nights. I also want to know whether it is better to rent a car or to take the train from the airport, because the hotel is about two hours away. My budget is not very large, but I would rather spend a little more on comfortable shoes than on souvenirs. Could you suggest a simple plan for the first three days, including a few short hikes that are suitable for beginners?`,
  de: `Ich plane für nächsten Monat eine Reise in die Berge und hätte gern ein paar Ratschläge, was ich einpacken soll. Das Wetter dort ändert sich schnell, deshalb brauche ich Kleidung für warme Nachmittage und kalte Nächte. Außerdem möchte ich wissen, ob es besser ist, am Flughafen ein Auto zu mieten oder mit dem Zug zu fahren, denn das Hotel liegt etwa zwei Stunden entfernt. Mein Budget ist nicht besonders groß, aber ich gebe lieber etwas mehr für bequeme Schuhe aus als für Andenken. Kannst du mir einen einfachen Plan für die ersten drei Tage vorschlagen?`,
  fr: `Je prévois un voyage à la montagne le mois prochain et j'aimerais quelques conseils sur ce qu'il faut emporter. Là-bas, le temps change très vite, donc il me faut des vêtements pour les après-midi chauds et les nuits froides. Je voudrais aussi savoir s'il vaut mieux louer une voiture ou prendre le train depuis l'aéroport, car l'hôtel se trouve à environ deux heures de route. Mon budget n'est pas très élevé, mais je préfère dépenser un peu plus pour de bonnes chaussures que pour des souvenirs. Pourrais-tu me proposer un programme simple pour les trois premiers jours ?`,
  es: `Estoy planeando un viaje a la montaña el mes que viene y me gustaría recibir algunos consejos sobre qué llevar. Allí el tiempo cambia muy rápido, así que necesito ropa para las tardes calurosas y para las noches frías. También quiero saber si es mejor alquilar un coche o tomar el tren desde el aeropuerto, porque el hotel está a unas dos horas de distancia. Mi presupuesto no es muy grande, pero prefiero gastar un poco más en unos zapatos cómodos que en recuerdos. ¿Podrías sugerirme un plan sencillo para los tres primeros días?`,
  it: `Sto organizzando un viaggio in montagna il mese prossimo e vorrei qualche consiglio su cosa mettere in valigia. Lassù il tempo cambia in fretta, quindi mi servono vestiti sia per i pomeriggi caldi sia per le notti fredde. Vorrei anche sapere se conviene noleggiare un'auto oppure prendere il treno dall'aeroporto, perché l'albergo si trova a circa due ore di distanza. Il mio budget non è molto alto, ma preferisco spendere qualcosa in più per delle scarpe comode piuttosto che per i souvenir. Potresti suggerirmi un programma semplice per i primi tre giorni?`,
  pt: `Estou a planear uma viagem às montanhas no próximo mês e gostaria de alguns conselhos sobre o que levar. Lá o tempo muda muito depressa, por isso preciso de roupa para as tardes quentes e para as noites frias. Também quero saber se é melhor alugar um carro ou apanhar o comboio no aeroporto, porque o hotel fica a cerca de duas horas de distância. O meu orçamento não é muito grande, mas prefiro gastar um pouco mais em sapatos confortáveis do que em lembranças. Podes sugerir-me um plano simples para os três primeiros dias?`,
  nl: `Ik ben van plan om volgende maand naar de bergen te reizen en ik zou graag wat advies krijgen over wat ik moet inpakken. Het weer verandert daar snel, dus ik heb kleding nodig voor warme middagen en koude nachten. Ik wil ook weten of het beter is om op het vliegveld een auto te huren of met de trein te gaan, want het hotel ligt ongeveer twee uur verderop. Mijn budget is niet erg groot, maar ik geef liever wat meer uit aan comfortabele schoenen dan aan souvenirs. Kun je een eenvoudig plan voor de eerste drie dagen voorstellen?`,
  pl: `W przyszłym miesiącu planuję wyjazd w góry i chciałbym dostać kilka rad, co powinienem spakować. Pogoda zmienia się tam bardzo szybko, więc potrzebuję ubrań zarówno na ciepłe popołudnia, jak i na zimne noce. Chcę też wiedzieć, czy lepiej wynająć samochód, czy pojechać pociągiem z lotniska, ponieważ hotel jest oddalony o około dwie godziny drogi. Mój budżet nie jest zbyt duży, ale wolę wydać trochę więcej na wygodne buty niż na pamiątki. Czy możesz zaproponować prosty plan na pierwsze trzy dni?`,
  sv: `Jag planerar en resa till fjällen nästa månad och skulle vilja ha några råd om vad jag ska packa. Vädret där ändras snabbt, så jag behöver kläder både för varma eftermiddagar och kalla nätter. Jag vill också veta om det är bättre att hyra en bil eller att ta tåget från flygplatsen, eftersom hotellet ligger ungefär två timmar bort. Min budget är inte särskilt stor, men jag lägger hellre lite mer pengar på bekväma skor än på souvenirer. Kan du föreslå en enkel plan för de tre första dagarna?`,
  tr: `Gelecek ay dağlara bir gezi planlıyorum ve yanıma ne almam gerektiği konusunda birkaç tavsiye istiyorum. Oradaki hava çok çabuk değişiyor, bu yüzden hem sıcak öğleden sonralar hem de soğuk geceler için kıyafete ihtiyacım var. Ayrıca havalimanından araba kiralamanın mı yoksa trene binmenin mi daha iyi olduğunu bilmek istiyorum, çünkü otel yaklaşık iki saat uzaklıkta. Bütçem çok büyük değil ama hediyelik eşyalar yerine rahat ayakkabılara biraz daha fazla para harcamayı tercih ederim. İlk üç gün için basit bir plan önerebilir misin?`,
  ru: `В следующем месяце я планирую поездку в горы и хотел бы получить несколько советов о том, что взять с собой. Погода там меняется очень быстро, поэтому мне нужна одежда и для тёплых дней, и для холодных ночей. Ещё я хочу понять, что лучше: взять машину напрокат или поехать на поезде из аэропорта, ведь гостиница находится примерно в двух часах езды. Бюджет у меня не очень большой, но я лучше потрачу немного больше на удобную обувь, чем на сувениры. Не мог бы ты предложить простой план на первые три дня?`,
  uk: `Наступного місяця я планую поїздку в гори і хотів би отримати кілька порад щодо того, що взяти з собою. Погода там змінюється дуже швидко, тому мені потрібен одяг і для теплих днів, і для холодних ночей. Також я хочу зрозуміти, що краще: орендувати машину чи поїхати потягом з аеропорту, адже готель розташований приблизно за дві години їзди. Мій бюджет не дуже великий, але я краще витрачу трохи більше на зручне взуття, ніж на сувеніри. Чи міг би ти запропонувати простий план на перші три дні?`,
  ja: `来月、山へ旅行に行く予定なので、何を持っていけばよいか教えてください。向こうの天気はすぐに変わるので、暖かい午後にも寒い夜にも対応できる服が必要です。また、ホテルは空港から二時間ほど離れているので、車を借りるのと電車で行くのと、どちらがよいでしょうか。`,
  zh: `我计划下个月去山区旅行，想请你给我一些关于需要带什么东西的建议。那里的天气变化很快，所以我需要既适合温暖下午又适合寒冷夜晚的衣服。另外，酒店离机场大约两个小时，我想知道是租车好还是坐火车好。`,
  ko: `다음 달에 산으로 여행을 가려고 하는데 무엇을 챙겨야 할지 조언을 듣고 싶어요. 그곳 날씨는 빨리 바뀌어서 따뜻한 오후와 추운 밤 모두를 위한 옷이 필요합니다. 호텔이 공항에서 두 시간 정도 떨어져 있는데 차를 빌리는 것이 나을까요, 기차를 타는 것이 나을까요?`,
  ar: `أخطط لرحلة إلى الجبال في الشهر القادم وأود الحصول على بعض النصائح حول ما يجب أن آخذه معي. الطقس هناك يتغير بسرعة، لذلك أحتاج إلى ملابس لفترات ما بعد الظهر الدافئة والليالي الباردة. كما أريد أن أعرف هل من الأفضل استئجار سيارة أم ركوب القطار من المطار، لأن الفندق يبعد حوالي ساعتين.`,
};

describe('detectLanguage', () => {
  test.each(Object.entries(paragraphs))('names %s for a paragraph written in it', (code, text) => {
    expect(detectLanguage(text)).toBe(code);
  });

  test('answers undefined for text too short to tell apart languages that share a script', () => {
    expect(detectLanguage('Hello, how are you?')).toBeUndefined();
    expect(detectLanguage('Wie geht es dir?')).toBeUndefined();
    expect(detectLanguage('ok')).toBeUndefined();
  });

  test('names a language from a few characters when its script is its own', () => {
    expect(detectLanguage('こんにちは')).toBe('ja');
    expect(detectLanguage('안녕하세요')).toBe('ko');
    expect(detectLanguage('你好，世界')).toBe('zh');
    expect(detectLanguage('Καλημέρα σας')).toBe('el');
  });

  test('answers undefined for text with no letters', () => {
    expect(detectLanguage('')).toBeUndefined();
    expect(detectLanguage('   \n\t ')).toBeUndefined();
    expect(detectLanguage('1234 5678 = 6912; (42 * 7) / 3 + 100 - 99 ...')).toBeUndefined();
    expect(detectLanguage('😀🎉👍')).toBeUndefined();
  });

  test('reads only the beginning of a long text', () => {
    const text = paragraphs.en!.slice(0, languageSampleLength) + paragraphs.de!.repeat(10);
    expect(detectLanguage(text)).toBe('en');
  });

  test('is right on nearly every answer it gives for excerpts of 40 to 300 characters, and answers most', () => {
    let answered = 0;
    let right = 0;
    let excerpts = 0;
    for (const [code, text] of Object.entries(paragraphs)) {
      for (let length = 40; length <= 300; length += 20) {
        for (let start = 0; start + length <= text.length; start += 37) {
          excerpts++;
          const detected = detectLanguage(text.slice(start, start + length));
          if (detected === undefined) continue;
          answered++;
          if (detected === code) right++;
        }
      }
    }
    expect(right / answered).toBeGreaterThan(0.97);
    expect(answered / excerpts).toBeGreaterThan(0.8);
  });

  test('maps every language franc can name, or declares why it cannot', () => {
    // franc-min languages with no ISO 639-1 code; an upgrade that adds a language fails here
    // until the table in language.ts gives it one.
    const withoutTwoLetterCode = new Set(['bho', 'ceb', 'hms', 'hnj', 'ilo', 'mad', 'mag', 'mai', 'skr']);
    const francLanguages = new Set<string>();
    for (const languages of Object.values(data))
      for (const name of Object.keys(languages)) francLanguages.add(name);
    for (const name of Object.keys(expressions)) if (!(name in data)) francLanguages.add(name);
    const mapped = new Set(Object.keys(iso6391));
    expect(
      [...francLanguages].filter((name) => !mapped.has(name) && !withoutTwoLetterCode.has(name)),
    ).toEqual([]);
    expect([...withoutTwoLetterCode].filter((name) => mapped.has(name) || !francLanguages.has(name))).toEqual(
      [],
    );
    for (const code of Object.values(iso6391)) expect(code).toMatch(/^[a-z]{2}$/);
  });
});
