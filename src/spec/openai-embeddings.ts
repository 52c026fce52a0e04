/** OpenAI's embeddings shapes. https://platform.openai.com/docs/api-reference/embeddings */

export interface EmbeddingsRequest {
  model: string;
  /** Text, texts, token ids, or arrays of token ids. */
  input: string | string[] | number[] | number[][];
  encoding_format?: 'float' | 'base64';
  dimensions?: number;
  user?: string;
  [field: string]: unknown;
}

export interface EmbeddingsResponse {
  object: 'list';
  data: { object: 'embedding'; index: number; embedding: number[] | string }[];
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}
