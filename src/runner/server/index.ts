export * from './chat-request.js';
export * from './embeddings-request.js';
export * from './runner-metrics.js';
export * from './runner-server.js';
export * from './running-models.js';
