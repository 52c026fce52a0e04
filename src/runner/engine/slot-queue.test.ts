import { describe, expect, it } from 'vitest';
import { ModelOverloadedError, SlotQueue } from './slot-queue.js';

describe('SlotQueue', () => {
  it('runs up to its slots at once and hands a released slot to the first waiter', async () => {
    const queue = new SlotQueue({ model: 'm', slots: 2, maxQueue: 2 });
    const first = await queue.acquire();
    await queue.acquire();
    const order: string[] = [];
    const third = queue.acquire().then((release) => {
      order.push('third');
      return release;
    });
    const fourth = queue.acquire().then(() => order.push('fourth'));
    expect(queue).toMatchObject({ running: 2, waiting: 2 });
    first();
    first(); // a second call must not free another slot
    const releaseThird = await third;
    expect(queue).toMatchObject({ running: 2, waiting: 1 });
    releaseThird();
    await fourth;
    expect(order).toEqual(['third', 'fourth']);
  });

  it('refuses at once with ModelOverloadedError when the wait queue is full', async () => {
    const queue = new SlotQueue({ model: 'demo', slots: 1, maxQueue: 1 });
    await queue.acquire();
    void queue.acquire();
    const error = await queue.acquire().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ModelOverloadedError);
    expect(error).toMatchObject({ code: 'model_overloaded', running: 1, waiting: 1, retryAfterSeconds: 1 });
  });

  it('lets an aborted waiter leave the queue at once, with the abort reason', async () => {
    const queue = new SlotQueue({ model: 'm', slots: 1, maxQueue: 1 });
    const release = await queue.acquire();
    const controller = new AbortController();
    const waiting = queue.acquire(controller.signal);
    controller.abort(new Error('client went away'));
    await expect(waiting).rejects.toThrow('client went away');
    expect(queue.waiting).toBe(0);
    release();
    expect(queue.running).toBe(0);
  });
});
