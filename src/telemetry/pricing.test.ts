import { describe, expect, it } from 'vitest';
import { cost, defaultPrices, freePrice, PriceTable } from './pricing.js';

describe('PriceTable', () => {
  const prices = new PriceTable();

  it('knows the list prices of well-known models', () => {
    expect(prices.lookup('gpt-4o')).toEqual({ input: 2.5, output: 10, cachedInput: 1.25 });
    expect(prices.lookup('claude-sonnet-4')).toEqual({ input: 3, output: 15, cachedInput: 0.3 });
    expect(prices.lookup('gemini-2.5-pro')).toEqual({ input: 1.25, output: 10, cachedInput: 0.31 });
    expect(prices.lookup('text-embedding-3-small')).toEqual({ input: 0.02, output: 0 });
  });

  it('prices a dated or tagged variant by its family, the longest family first', () => {
    expect(prices.lookup('gpt-4o-2024-08-06')).toBe(prices.lookup('gpt-4o'));
    expect(prices.lookup('gpt-4o-mini-2024-07-18')).toBe(prices.lookup('gpt-4o-mini'));
    expect(prices.lookup('claude-3-5-sonnet-20241022')).toBe(prices.lookup('claude-3-5-sonnet'));
    expect(prices.lookup('claude-opus-4-1-20250805')).toBe(prices.lookup('claude-opus-4'));
    expect(prices.lookup('gemini-2.5-flash-lite')).toEqual({ input: 0.1, output: 0.4, cachedInput: 0.025 });
    expect(prices.lookup('o3-mini')).not.toBe(prices.lookup('o3'));
  });

  it('does not take a family’s price for a name that only begins with its letters', () => {
    expect(prices.lookup('gpt-4')).toBeUndefined();
    expect(prices.lookup('o30')).toBeUndefined();
  });

  it('sees through a provider path and a Bedrock vendor prefix', () => {
    expect(prices.lookup('openai/gpt-4.1-mini')).toBe(prices.lookup('gpt-4.1-mini'));
    expect(prices.lookup('models/gemini-2.0-flash-001')).toBe(prices.lookup('gemini-2.0-flash'));
    expect(prices.lookup('us.anthropic.claude-3-7-sonnet-20250219-v1:0')).toBe(
      prices.lookup('claude-3-7-sonnet'),
    );
  });

  it('answers undefined for a model nobody priced', () => {
    expect(prices.lookup('my-fine-tune')).toBeUndefined();
    expect(prices.lookup('my-fine-tune')).toBeUndefined();
  });

  it('prices local models at zero', () => {
    expect(prices.lookup('local/qwen:0.5b')).toEqual(freePrice);
    expect(prices.resolve({ model: 'demo', upstreamModel: 'demo:small', local: true })).toBe(freePrice);
  });

  it('lets the config override a default, and add exact and wildcard entries', () => {
    const configured = new PriceTable({
      'gpt-4o': { input: 2, output: 8 },
      'acme/*': { input: 0.5, output: 0.5 },
      'acme/big': { input: 9, output: 9 },
    });
    expect(configured.lookup('gpt-4o-2024-08-06')).toEqual({ input: 2, output: 8 });
    expect(configured.lookup('gpt-4o-mini')).toEqual(defaultPrices['gpt-4o-mini']);
    expect(configured.lookup('acme/small')).toEqual({ input: 0.5, output: 0.5 });
    expect(configured.lookup('acme/big')).toEqual({ input: 9, output: 9 });
  });

  it('resolves a request by the deployment’s price, then the upstream model, then the client’s model', () => {
    const price = { input: 1, output: 1 };
    expect(prices.resolve({ model: 'fast', upstreamModel: 'gpt-4o', configured: price })).toBe(price);
    expect(prices.resolve({ model: 'fast', upstreamModel: 'gpt-4o-mini' })).toBe(
      prices.lookup('gpt-4o-mini'),
    );
    expect(prices.resolve({ model: 'gpt-4.1', upstreamModel: 'unknown' })).toBe(prices.lookup('gpt-4.1'));
    expect(prices.resolve({ model: 'fast', upstreamModel: undefined })).toBeUndefined();
  });
});

describe('cost', () => {
  it('bills prompt and completion tokens at dollars per million', () => {
    expect(cost({ prompt_tokens: 1_000_000, completion_tokens: 500_000 }, { input: 2.5, output: 10 })).toBe(
      7.5,
    );
    expect(cost({ prompt_tokens: 1000, completion_tokens: 100 }, { input: 3, output: 15 })).toBeCloseTo(
      0.0045,
      12,
    );
  });

  it('bills cached prompt tokens at the cached rate instead of the input rate', () => {
    const price = { input: 2.5, output: 10, cachedInput: 1.25 };
    // 800 uncached × 2.5 + 200 cached × 1.25 + 500 × 10, per million.
    expect(cost({ prompt_tokens: 1000, completion_tokens: 500, cached_tokens: 200 }, price)).toBeCloseTo(
      0.00725,
      12,
    );
  });

  it('bills cached tokens at the input rate when the price has no cached rate', () => {
    const price = { input: 2, output: 8 };
    expect(cost({ prompt_tokens: 1000, completion_tokens: 0, cached_tokens: 600 }, price)).toBeCloseTo(
      0.002,
      12,
    );
  });

  it('costs nothing on a local model', () => {
    expect(cost({ prompt_tokens: 12_345, completion_tokens: 678, cached_tokens: 9 }, freePrice)).toBe(0);
  });
});
