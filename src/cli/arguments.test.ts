import { describe, expect, it } from 'vitest';
import { negativeValues } from './arguments.js';

describe('negativeValues', () => {
  it('joins a negative number to the option before it', () => {
    expect(negativeValues(['--keep-alive', '-1', '--port', '4100'], ['keep-alive'])).toEqual([
      '--keep-alive=-1',
      '--port',
      '4100',
    ]);
  });

  it('leaves other options, positive values and the "=" form alone', () => {
    const args = ['--keep-alive=-1', '--port', '-5', '--keep-alive', '5m', '--keep-alive'];
    expect(negativeValues(args, ['keep-alive'])).toEqual(args);
  });
});
