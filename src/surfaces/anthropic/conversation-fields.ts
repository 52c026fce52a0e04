import { GatewayError } from '../../errors/index.js';
import type {
  AnthropicImageBlock,
  AnthropicMessage,
  AnthropicRequest,
  AnthropicRequestBlock,
  AnthropicTextBlock,
  AnthropicTool,
  AnthropicToolChoice,
  AnthropicToolResultBlock,
} from '../../spec/anthropic.js';

/**
 * Validation of the parts a Messages request and a count_tokens request share: the model, the
 * conversation, the system prompt, tools, tool_choice and thinking. Errors name the field the way
 * Anthropic's API does ("messages.1.content.0.type: …") and say what to send instead.
 * https://docs.anthropic.com/en/api/messages
 */

export type JsonObject = Record<string, unknown>;

/** A custom tool; `strict` asks for arguments that always match input_schema, as OpenAI's does. */
export type AnthropicToolDefinition = AnthropicTool & { strict?: boolean };

export type AnthropicThinking = NonNullable<AnthropicRequest['thinking']>;

export function isObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** A 400 for a field with the wrong type or value; `problem` finishes the sentence "<path>: …". */
export function invalidField(path: string, problem: string): GatewayError {
  return new GatewayError('invalid_field', `${path}: ${problem}.`, { param: path });
}

/** A 400 for a required field that is absent; `hint` says what to send. */
export function missingField(path: string, hint: string): GatewayError {
  return new GatewayError('missing_field', `${path}: field required; ${hint}.`, { param: path });
}

/** A 400 for an Anthropic feature the surface cannot carry to other vendors' models. */
export function notTranslated(path: string, problem: string): GatewayError {
  return new GatewayError('unsupported_param', `${path}: ${problem}.`, { param: path });
}

export function invalidBody(example: string): GatewayError {
  return new GatewayError('invalid_body', `The request body must be a JSON object, such as ${example}.`);
}

/** Valid at Anthropic, but they name Anthropic-hosted machinery no other model has. */
const anthropicOnlyFields = new Set(['container', 'mcp_servers', 'context_management']);

/**
 * Anthropic answers "Extra inputs are not permitted" for a field it does not define; so do we,
 * so that an OpenAI habit (`stop`, `n`, `max_completion_tokens`) or a typo is never ignored in
 * silence. Anthropic-only fields get an unsupported_param naming them instead.
 */
export function rejectUnknownFields(body: JsonObject, known: ReadonlySet<string>): void {
  for (const field of Object.keys(body)) {
    if (known.has(field)) continue;
    if (anthropicOnlyFields.has(field)) {
      throw notTranslated(
        field,
        "is an Anthropic platform feature that Switchyard's Messages surface cannot carry to other models; remove it",
      );
    }
    throw invalidField(field, `is not a field of this endpoint; it accepts ${[...known].join(', ')}`);
  }
}

/** Optional fields may be sent as null, which means absent. */
export function present(value: unknown): boolean {
  return value !== undefined && value !== null;
}

export function parseModel(value: unknown): string {
  if (!present(value)) throw missingField('model', 'name the model to use; GET /v1/models lists them');
  if (typeof value !== 'string' || value === '') {
    throw invalidField('model', 'must be a non-empty string naming the model; GET /v1/models lists them');
  }
  return value;
}

const messagesExample = '[{"role": "user", "content": "Hello"}]';

/**
 * The conversation. Consecutive messages with the same role are one turn to Anthropic, so the
 * pairing of tool_use and tool_result is checked turn by turn, as Anthropic checks it.
 */
export function parseMessages(value: unknown): AnthropicMessage[] {
  if (!present(value))
    throw missingField('messages', `give the conversation as an array such as ${messagesExample}`);
  if (!Array.isArray(value) || value.length === 0) {
    throw invalidField('messages', `must be a non-empty array of messages such as ${messagesExample}`);
  }
  const messages = value.map((message, index) =>
    parseMessage(message, `messages.${index}`, index === value.length - 1),
  );
  checkToolPairs(messages);
  return messages;
}

function parseMessage(value: unknown, path: string, last: boolean): AnthropicMessage {
  if (!isObject(value)) throw invalidField(path, 'must be an object with "role" and "content"');
  const role = value.role;
  if (!present(role)) throw missingField(`${path}.role`, 'give "user" or "assistant"');
  if (role !== 'user' && role !== 'assistant') {
    const advice =
      role === 'system'
        ? '; put a system prompt in the top-level "system" field'
        : role === 'tool'
          ? '; send a tool result as a "tool_result" block in a user message'
          : '';
    throw invalidField(`${path}.role`, `must be "user" or "assistant"${advice}`);
  }
  const content = value.content;
  if (!present(content)) throw missingField(`${path}.content`, 'give a string or an array of content blocks');
  // Anthropic allows an empty final assistant message (a prefill of nothing), nothing else empty.
  const mayBeEmpty = last && role === 'assistant';
  if (typeof content === 'string') {
    if (content === '' && !mayBeEmpty) throw invalidField(`${path}.content`, 'must not be empty');
    return { role, content };
  }
  if (!Array.isArray(content)) {
    throw invalidField(`${path}.content`, 'must be a string or an array of content blocks');
  }
  if (content.length === 0 && !mayBeEmpty) {
    throw invalidField(`${path}.content`, 'must not be empty: give at least one content block');
  }
  return {
    role,
    content: content.map((block, index) => parseBlock(block, `${path}.content.${index}`, role)),
  };
}

const messageBlockTypes = ['text', 'image', 'tool_use', 'tool_result', 'thinking', 'redacted_thinking'];

/** Anthropic block types that only Anthropic's own servers can act on. */
const notCarriedBlockTypes = new Set([
  'document',
  'search_result',
  'server_tool_use',
  'web_search_tool_result',
  'web_fetch_tool_result',
  'code_execution_tool_result',
  'bash_code_execution_tool_result',
  'text_editor_code_execution_tool_result',
  'mcp_tool_use',
  'mcp_tool_result',
  'container_upload',
]);

function parseBlock(value: unknown, path: string, role: 'user' | 'assistant'): AnthropicRequestBlock {
  if (!isObject(value))
    throw invalidField(path, 'must be a content block object such as {"type": "text", "text": "Hello"}');
  const type = value.type;
  if (!present(type)) throw missingField(`${path}.type`, `give one of ${quoteList(messageBlockTypes)}`);
  switch (type) {
    case 'text':
      return parseTextBlock(value, path);
    case 'image':
      return parseImageBlock(value, path);
    case 'tool_use':
      if (role !== 'assistant')
        throw invalidField(`${path}.type`, '"tool_use" blocks belong in assistant messages');
      return {
        type,
        id: nonEmptyString(value.id, `${path}.id`, 'the id the model gave the tool call'),
        name: nonEmptyString(value.name, `${path}.name`, 'the name of the tool called'),
        input: objectField(
          value.input,
          `${path}.input`,
          'the arguments the tool was called with, as an object',
        ),
      };
    case 'tool_result':
      if (role !== 'user') throw invalidField(`${path}.type`, '"tool_result" blocks belong in user messages');
      return parseToolResult(value, path);
    case 'thinking':
      if (role !== 'assistant')
        throw invalidField(`${path}.type`, '"thinking" blocks belong in assistant messages');
      return {
        type,
        thinking: stringField(value.thinking, `${path}.thinking`),
        signature: stringField(value.signature, `${path}.signature`),
      };
    case 'redacted_thinking':
      if (role !== 'assistant') {
        throw invalidField(`${path}.type`, '"redacted_thinking" blocks belong in assistant messages');
      }
      return { type, data: stringField(value.data, `${path}.data`) };
    default:
      if (typeof type === 'string' && notCarriedBlockTypes.has(type)) {
        throw notTranslated(
          `${path}.type`,
          `"${type}" blocks are not translated for other models; send ${quoteList(messageBlockTypes)} blocks`,
        );
      }
      throw invalidField(`${path}.type`, `must be one of ${quoteList(messageBlockTypes)}`);
  }
}

function parseTextBlock(value: JsonObject, path: string): AnthropicTextBlock {
  const text = value.text;
  if (!present(text)) throw missingField(`${path}.text`, 'give the text as a string');
  if (typeof text !== 'string') throw invalidField(`${path}.text`, 'must be a string');
  if (text === '') throw invalidField(`${path}.text`, 'must not be empty: leave out an empty text block');
  return { type: 'text', text };
}

const imageMediaTypes = ['image/jpeg', 'image/png', 'image/gif', 'image/webp'];

function parseImageBlock(value: JsonObject, path: string): AnthropicImageBlock {
  const source = value.source;
  const sourcePath = `${path}.source`;
  const example =
    '{"type": "base64", "media_type": "image/png", "data": "…"} or {"type": "url", "url": "https://…"}';
  if (!present(source)) throw missingField(sourcePath, `give the image as ${example}`);
  if (!isObject(source)) throw invalidField(sourcePath, `must be an object such as ${example}`);
  switch (source.type) {
    case 'base64': {
      const mediaType = source.media_type;
      if (typeof mediaType !== 'string' || !imageMediaTypes.includes(mediaType)) {
        throw invalidField(`${sourcePath}.media_type`, `must be one of ${quoteList(imageMediaTypes)}`);
      }
      const data = nonEmptyString(source.data, `${sourcePath}.data`, "the image's bytes in base64");
      return { type: 'image', source: { type: 'base64', media_type: mediaType, data } };
    }
    case 'url':
      return {
        type: 'image',
        source: {
          type: 'url',
          url: nonEmptyString(source.url, `${sourcePath}.url`, 'the https URL of the image'),
        },
      };
    case 'file':
      // A file_id names an upload in Anthropic's Files API, which no other vendor can read.
      throw notTranslated(
        `${sourcePath}.type`,
        'images from the Files API cannot be sent to other models; send the image in base64 or by URL',
      );
    default:
      throw invalidField(`${sourcePath}.type`, 'must be "base64" or "url"');
  }
}

function parseToolResult(value: JsonObject, path: string): AnthropicToolResultBlock {
  const block: AnthropicToolResultBlock = {
    type: 'tool_result',
    tool_use_id: nonEmptyString(
      value.tool_use_id,
      `${path}.tool_use_id`,
      'the id of the tool_use block this answers',
    ),
  };
  const content = value.content;
  if (present(content)) {
    if (typeof content === 'string') block.content = content;
    else if (Array.isArray(content)) {
      block.content = content.map((item, index) => {
        const itemPath = `${path}.content.${index}`;
        if (!isObject(item)) throw invalidField(itemPath, 'must be a "text" or "image" block');
        if (item.type === 'text') return parseTextBlock(item, itemPath);
        if (item.type === 'image') return parseImageBlock(item, itemPath);
        if (typeof item.type === 'string' && notCarriedBlockTypes.has(item.type)) {
          throw notTranslated(
            `${itemPath}.type`,
            `"${item.type}" blocks are not translated for other models; send "text" or "image" blocks`,
          );
        }
        throw invalidField(`${itemPath}.type`, 'must be "text" or "image"');
      });
    } else {
      throw invalidField(`${path}.content`, 'must be a string or an array of "text" and "image" blocks');
    }
  }
  if (present(value.is_error)) {
    if (typeof value.is_error !== 'boolean') throw invalidField(`${path}.is_error`, 'must be true or false');
    block.is_error = value.is_error;
  }
  return block;
}

/**
 * Every tool_result must answer a tool_use of the assistant turn just before it, and an assistant
 * turn's tool calls must all be answered by the user turn that follows, when one follows. Checked
 * here because the OpenAI-shaped request would otherwise fail upstream with a message about
 * "tool_call_id" that a Claude client never sent.
 */
function checkToolPairs(messages: readonly AnthropicMessage[]): void {
  let previousToolUses: { ids: Set<string>; firstIndex: number } | undefined;
  let index = 0;
  while (index < messages.length) {
    const role = messages[index]!.role;
    let end = index;
    while (end < messages.length && messages[end]!.role === role) end++;
    if (role === 'assistant') {
      const ids = new Set<string>();
      for (let at = index; at < end; at++) {
        for (const block of blocksOf(messages[at]!)) if (block.type === 'tool_use') ids.add(block.id);
      }
      previousToolUses = ids.size > 0 ? { ids, firstIndex: index } : undefined;
    } else {
      const answered = new Set<string>();
      for (let at = index; at < end; at++) {
        blocksOf(messages[at]!).forEach((block, blockIndex) => {
          if (block.type !== 'tool_result') return;
          if (previousToolUses?.ids.has(block.tool_use_id) !== true) {
            throw invalidField(
              `messages.${at}.content.${blockIndex}.tool_use_id`,
              `"${block.tool_use_id}" answers no tool_use block in the assistant message just before; each tool_result must carry the id of a tool_use from that message`,
            );
          }
          answered.add(block.tool_use_id);
        });
      }
      if (previousToolUses !== undefined) {
        const unanswered = [...previousToolUses.ids].filter((id) => !answered.has(id));
        if (unanswered.length > 0) {
          throw invalidField(
            `messages.${index}`,
            `must hold a tool_result block for each tool_use in messages.${previousToolUses.firstIndex}; none answers ${unanswered.join(', ')}`,
          );
        }
      }
      previousToolUses = undefined;
    }
    index = end;
  }
}

function blocksOf(message: AnthropicMessage): readonly AnthropicRequestBlock[] {
  return typeof message.content === 'string' ? [] : message.content;
}

/** The system prompt: a string, or text blocks. */
export function parseSystem(value: unknown): string | AnthropicTextBlock[] | undefined {
  if (!present(value)) return undefined;
  if (typeof value === 'string') return value;
  if (!Array.isArray(value)) throw invalidField('system', 'must be a string or an array of text blocks');
  return value.map((block, index) => {
    const path = `system.${index}`;
    if (!isObject(block) || block.type !== 'text') {
      throw invalidField(path, 'must be a text block such as {"type": "text", "text": "You are …"}');
    }
    return parseTextBlock(block, path);
  });
}

// Anthropic's rule for custom tool names, the same as OpenAI's for function names.
const toolNamePattern = /^[a-zA-Z0-9_-]{1,64}$/;
// Anthropic's own tools are versioned by date: bash_20250124, web_search_20250305 …
const builtInToolType = /_\d{8}$/;

export function parseTools(value: unknown): AnthropicToolDefinition[] | undefined {
  if (!present(value)) return undefined;
  if (!Array.isArray(value)) throw invalidField('tools', 'must be an array of tools');
  const names = new Set<string>();
  return value.map((item, index) => {
    const path = `tools.${index}`;
    if (!isObject(item)) {
      throw invalidField(
        path,
        'must be a tool such as {"name": "get_weather", "input_schema": {"type": "object"}}',
      );
    }
    const type = item.type;
    if (present(type) && type !== 'custom') {
      if (typeof type === 'string' && builtInToolType.test(type)) {
        throw notTranslated(
          `${path}.type`,
          `"${type}" is one of Anthropic's built-in tools, which other models do not have; describe it as a custom tool with a name and an input_schema`,
        );
      }
      throw invalidField(`${path}.type`, 'must be "custom" or left out for a tool you define');
    }
    const name = item.name;
    if (!present(name)) throw missingField(`${path}.name`, 'give the name the model calls the tool by');
    if (typeof name !== 'string' || !toolNamePattern.test(name)) {
      throw invalidField(`${path}.name`, 'must be 1 to 64 letters, digits, underscores or hyphens');
    }
    if (names.has(name)) throw invalidField(`${path}.name`, `repeats "${name}"; tool names must be unique`);
    names.add(name);
    const schema = item.input_schema;
    if (!present(schema)) {
      throw missingField(
        `${path}.input_schema`,
        'give a JSON Schema such as {"type": "object", "properties": {…}}',
      );
    }
    if (!isObject(schema)) throw invalidField(`${path}.input_schema`, 'must be a JSON Schema object');
    if (schema.type !== 'object') throw invalidField(`${path}.input_schema.type`, 'must be "object"');
    const tool: AnthropicToolDefinition = { name, input_schema: schema };
    if (present(item.description)) tool.description = stringField(item.description, `${path}.description`);
    if (present(item.strict)) {
      if (typeof item.strict !== 'boolean') throw invalidField(`${path}.strict`, 'must be true or false');
      tool.strict = item.strict;
    }
    return tool;
  });
}

export function parseToolChoice(
  value: unknown,
  tools: readonly AnthropicTool[] | undefined,
): AnthropicToolChoice | undefined {
  if (!present(value)) return undefined;
  const example = '{"type": "auto"}, {"type": "any"}, {"type": "tool", "name": "…"} or {"type": "none"}';
  if (!isObject(value)) throw invalidField('tool_choice', `must be an object: ${example}`);
  const type = value.type;
  if (type !== 'auto' && type !== 'any' && type !== 'tool' && type !== 'none') {
    throw invalidField('tool_choice.type', 'must be "auto", "any", "tool" or "none"');
  }
  if (type === 'none') return { type };
  let disableParallel: boolean | undefined;
  if (present(value.disable_parallel_tool_use)) {
    if (typeof value.disable_parallel_tool_use !== 'boolean') {
      throw invalidField('tool_choice.disable_parallel_tool_use', 'must be true or false');
    }
    disableParallel = value.disable_parallel_tool_use;
  }
  const extra = disableParallel === undefined ? {} : { disable_parallel_tool_use: disableParallel };
  if (type === 'auto') return { type, ...extra };
  if (tools === undefined || tools.length === 0) {
    throw invalidField('tool_choice', `"${type}" needs at least one tool in "tools"`);
  }
  if (type === 'any') return { type, ...extra };
  const name = value.name;
  if (!present(name)) throw missingField('tool_choice.name', 'name the tool the model must call');
  if (typeof name !== 'string' || !tools.some((tool) => tool.name === name)) {
    throw invalidField(
      'tool_choice.name',
      `must name one of the tools: ${quoteList(tools.map((tool) => tool.name))}`,
    );
  }
  return { type, name, ...extra };
}

// Anthropic's documented floor for a thinking budget.
const minimumThinkingBudget = 1024;

export function parseThinking(value: unknown): AnthropicThinking | undefined {
  if (!present(value)) return undefined;
  const example = '{"type": "enabled", "budget_tokens": 2048} or {"type": "disabled"}';
  if (!isObject(value)) throw invalidField('thinking', `must be an object: ${example}`);
  if (value.type === 'disabled') return { type: 'disabled' };
  if (value.type !== 'enabled') throw invalidField('thinking.type', 'must be "enabled" or "disabled"');
  const budget = value.budget_tokens;
  if (!present(budget))
    throw missingField('thinking.budget_tokens', 'give how many tokens the model may think with');
  if (!Number.isInteger(budget) || (budget as number) < minimumThinkingBudget) {
    throw invalidField('thinking.budget_tokens', `must be an integer of at least ${minimumThinkingBudget}`);
  }
  return { type: 'enabled', budget_tokens: budget as number };
}

function stringField(value: unknown, path: string): string {
  if (typeof value !== 'string') throw invalidField(path, 'must be a string');
  return value;
}

function nonEmptyString(value: unknown, path: string, what: string): string {
  if (!present(value)) throw missingField(path, `give ${what}`);
  if (typeof value !== 'string' || value === '')
    throw invalidField(path, `must be a non-empty string: ${what}`);
  return value;
}

function objectField(value: unknown, path: string, what: string): JsonObject {
  if (!present(value)) throw missingField(path, `give ${what}`);
  if (!isObject(value)) throw invalidField(path, `must be ${what}`);
  return value;
}

function quoteList(values: readonly string[]): string {
  return values.map((value) => `"${value}"`).join(', ');
}
