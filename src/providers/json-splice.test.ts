import { describe, expect, test } from 'vitest';
import { findTopLevelValue, type Span, splice } from './json-splice.js';

/** The text of the value `findTopLevelValue` finds for `key`, or undefined. */
function valueText(json: string, key = 'model'): string | undefined {
  const bytes = Buffer.from(json);
  const span = findTopLevelValue(bytes, key);
  return span === undefined ? undefined : bytes.toString('utf8', span.start, span.end);
}

describe('findTopLevelValue', () => {
  test('finds the value wherever the key sits among the top-level fields', () => {
    expect(valueText('{"model":"gpt-4o","messages":[]}')).toBe('"gpt-4o"');
    expect(valueText('{"messages":[],"model":"gpt-4o","stream":true}')).toBe('"gpt-4o"');
    expect(valueText('{"messages":[],"stream":true,"model":"gpt-4o"}')).toBe('"gpt-4o"');
  });

  test('ignores a "model" key nested inside messages, metadata or arrays', () => {
    const json = JSON.stringify({
      messages: [{ role: 'user', content: 'hi', model: 'nested-in-message' }],
      metadata: { model: 'nested-in-metadata', deeper: { model: 'x' } },
      tools: [[{ model: 'in-array' }]],
      model: 'top',
    });
    expect(valueText(json)).toBe('"top"');
  });

  test('is not fooled by "model" inside a string value', () => {
    const json = '{"prompt":"say \\"model\\": \\"fake\\"","model":"real"}';
    expect(JSON.parse(json).model).toBe('real');
    expect(valueText(json)).toBe('"real"');
  });

  test('handles escaped quotes and backslashes before the key', () => {
    const json = JSON.stringify({
      a: 'quote " and backslash \\',
      b: '\\',
      c: '\\"',
      d: 'ends with \\\\',
      model: 'm',
    });
    expect(valueText(json)).toBe('"m"');
  });

  test('handles a value that itself has escapes', () => {
    const json = JSON.stringify({ model: 'we\\ird "name"', x: 1 });
    expect(JSON.parse(valueText(json)!)).toBe('we\\ird "name"');
  });

  test('tolerates whitespace and newlines around every token', () => {
    const json = ' \n{ \r\n\t"messages" : [ 1 , { "model" : 2 } ] ,\n  "model"  :\n\t "spaced"  \n}\n';
    expect(valueText(json)).toBe('"spaced"');
  });

  test('spans numbers, booleans, null, objects and arrays exactly', () => {
    expect(valueText('{"model":-12.5e3,"x":1}')).toBe('-12.5e3');
    expect(valueText('{"model":true}')).toBe('true');
    expect(valueText('{"model":false }')).toBe('false');
    expect(valueText('{"model":null\n,"x":1}')).toBe('null');
    expect(valueText('{"model":{"a":[1,{"b":"}"}]},"x":1}')).toBe('{"a":[1,{"b":"}"}]}');
    expect(valueText('{"model":[1,"]",[2]] ,"x":1}')).toBe('[1,"]",[2]]');
  });

  test('finds keys other than "model"', () => {
    expect(valueText('{"model":"m","stream_options":{"include_usage":false}}', 'stream_options')).toBe(
      '{"include_usage":false}',
    );
  });

  test('returns undefined when the key is absent, the object empty, or the JSON not an object', () => {
    expect(valueText('{"messages":[{"model":"nested"}]}')).toBeUndefined();
    expect(valueText('{}')).toBeUndefined();
    expect(valueText('  { }  ')).toBeUndefined();
    expect(valueText('["model","x"]')).toBeUndefined();
    expect(valueText('"model"')).toBeUndefined();
  });

  test('refuses a body with the key twice, since parsers read the last and a splice would change the first', () => {
    const json = '{"model":"cheap-alias","messages":[],"model":"gpt-4"}';
    expect(JSON.parse(json).model).toBe('gpt-4');
    expect(valueText(json)).toBeUndefined();
  });

  test('refuses a body where the key is also spelt with escapes', () => {
    const json = '{"model":"cheap-alias","mod\\u0065l":"gpt-4"}';
    expect(JSON.parse(json).model).toBe('gpt-4');
    expect(valueText(json)).toBeUndefined();
    expect(valueText('{"mod\\u0065l":"gpt-4"}')).toBeUndefined();
  });

  test('an escaped key that means something else does not get in the way', () => {
    expect(valueText('{"a\\"b":1,"\\u00e9":2,"model":"m"}')).toBe('"m"');
  });
});

describe('splice', () => {
  test('replaces exactly the bytes of the span and keeps the rest byte for byte', () => {
    const json = '{ "messages": [ {"role":"user","content":"hé"} ],\n "model" : "old" , "n": 1 }';
    const bytes = Buffer.from(json);
    const span = findTopLevelValue(bytes, 'model')!;
    const result = splice(bytes, span, JSON.stringify('new-model'));
    expect(result.toString()).toBe(json.replace('"old"', '"new-model"'));
  });

  test('works at the very start and end of the buffer', () => {
    const bytes = Buffer.from('abcdef');
    expect(splice(bytes, { start: 0, end: 2 }, 'XY').toString()).toBe('XYcdef');
    expect(splice(bytes, { start: 4, end: 6 }, '').toString()).toBe('abcd');
    expect(splice(bytes, { start: 3, end: 3 }, '-').toString()).toBe('abc-def');
  });

  test('does not modify the original buffer', () => {
    const bytes = Buffer.from('{"model":"a"}');
    splice(bytes, { start: 9, end: 12 }, '"b"');
    expect(bytes.toString()).toBe('{"model":"a"}');
  });
});

describe('splicing random JSON bodies', () => {
  /** Mulberry32: a small seeded PRNG, so a failure reproduces. */
  function prng(seed: number): () => number {
    let state = seed >>> 0;
    return () => {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  const alphabet = [
    'a',
    'z',
    ' ',
    '"',
    '\\',
    '{',
    '}',
    '[',
    ']',
    ':',
    ',',
    '\n',
    '\t',
    'é',
    '日',
    '😀',
    '\u0000',
    'model',
  ];

  function generate(random: () => number) {
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const string = () => Array.from({ length: Math.floor(random() * 8) }, () => pick(alphabet)).join('');
    const key = () => (random() < 0.2 ? 'model' : string());
    const value = (depth: number): unknown => {
      const kind = depth > 3 ? Math.floor(random() * 4) : Math.floor(random() * 6);
      switch (kind) {
        case 0:
          return string();
        case 1:
          return Math.round((random() - 0.5) * 1e6) / (random() < 0.5 ? 1 : 1000);
        case 2:
          return pick([true, false, null]);
        case 3:
          return random() < 0.5 ? string() : -0.5;
        case 4:
          return Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1));
        default: {
          const object: Record<string, unknown> = {};
          for (let index = Math.floor(random() * 4); index > 0; index--) object[key()] = value(depth + 1);
          return object;
        }
      }
    };
    const top: Record<string, unknown> = {};
    const fields = 1 + Math.floor(random() * 5);
    const modelAt = Math.floor(random() * fields);
    for (let index = 0; index < fields; index++) {
      if (index === modelAt) top.model = value(0);
      else {
        const name = string();
        if (name !== 'model') top[name] = value(0);
      }
    }
    return top;
  }

  test('replacing the top-level model of 500 random objects parses to the object with only model changed', () => {
    const random = prng(20240601);
    for (let round = 0; round < 500; round++) {
      const object = generate(random);
      const indent = round % 3 === 0 ? 2 : undefined;
      const bytes = Buffer.from(JSON.stringify(object, null, indent));
      const span: Span | undefined = findTopLevelValue(bytes, 'model');
      expect(span, `round ${round}: ${bytes}`).toBeDefined();
      const result = splice(bytes, span!, JSON.stringify('x'));
      expect(JSON.parse(result.toString()), `round ${round}`).toEqual({ ...object, model: 'x' });
    }
  });
});
