export * from './load.js';
export type * from './types.js';
