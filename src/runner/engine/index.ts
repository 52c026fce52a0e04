export * from './chat-types.js';
export * from './llama-engine.js';
export * from './memory-budget.js';
export * from './slot-queue.js';
export * from './threads.js';
