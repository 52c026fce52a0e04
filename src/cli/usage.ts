import { parseArgs } from 'node:util';
import { request } from 'undici';
import { defaultHost, defaultPort } from '../config/defaults.js';
import type { UsageRow, UsageTotals } from '../telemetry/usage-ledger.js';
import { table } from './table.js';

const groups = ['key', 'team', 'model', 'day'];
const usageLine =
  'Usage: switchyard usage [--by key|team|model|day] [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--daily]\n' +
  '                        [--key ID] [--team ID] [--model NAME] [--json] [--url URL] [--admin-key KEY]\n';

/** GET /admin/usage's answer, as far as the table needs it. */
export interface UsageResponse {
  readonly group_by: string;
  readonly interval: string;
  readonly from: string;
  readonly to: string;
  readonly data: readonly UsageRow[];
  readonly total: UsageTotals;
}

/**
 * `switchyard usage`: requests, tokens and cost from a running gateway's admin API (GET
 * /admin/usage), grouped by key, team, model or day, totals or one row per day. The gateway is
 * --url, else SWITCHYARD_URL, else the default address; the key is --admin-key, else
 * SWITCHYARD_ADMIN_KEY. Exits 0 with the table (or the JSON with --json), 1 when the gateway
 * cannot answer, 2 on a bad command line (the gateway's 400s included: they name a flag's value).
 */
export async function usageCommand(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      by: { type: 'string', default: 'model' },
      from: { type: 'string' },
      to: { type: 'string' },
      daily: { type: 'boolean', default: false },
      key: { type: 'string' },
      team: { type: 'string' },
      model: { type: 'string' },
      json: { type: 'boolean', default: false },
      url: { type: 'string' },
      'admin-key': { type: 'string' },
    },
    strict: true,
  });
  if (!groups.includes(values.by)) {
    process.stderr.write(
      `switchyard: --by must be one of ${groups.join(', ')}, not "${values.by}"\n${usageLine}`,
    );
    return 2;
  }
  const base = (values.url ?? env.SWITCHYARD_URL ?? `http://${defaultHost}:${defaultPort}`).replace(
    /\/+$/,
    '',
  );
  if (!/^https?:\/\/[^/]/.test(base)) {
    process.stderr.write(
      `switchyard: --url must be the gateway's URL, such as http://127.0.0.1:4000, not "${base}"\n`,
    );
    return 2;
  }
  const adminKey = values['admin-key'] ?? env.SWITCHYARD_ADMIN_KEY;
  if (adminKey === undefined || adminKey === '') {
    process.stderr.write(
      'switchyard: the usage API needs the admin key: pass --admin-key or set SWITCHYARD_ADMIN_KEY\n',
    );
    return 2;
  }

  const query = new URLSearchParams({ group_by: values.by, interval: values.daily ? 'day' : 'total' });
  for (const name of ['from', 'to', 'key', 'team', 'model'] as const) {
    const value = values[name];
    if (value !== undefined) query.set(name, value);
  }
  let status: number;
  let text: string;
  try {
    const response = await request(`${base}/admin/usage?${query}`, {
      headers: { authorization: `Bearer ${adminKey}` },
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
    status = response.statusCode;
    text = await response.body.text();
  } catch (error) {
    const reason = (error as { code?: unknown }).code ?? (error as Error).message;
    process.stderr.write(
      `switchyard: no gateway answers at ${base} (${String(reason)}); start \`switchyard serve\`, or pass --url\n`,
    );
    return 1;
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (status !== 200 || !Array.isArray((body as UsageResponse | undefined)?.data)) {
    process.stderr.write(
      `switchyard: ${base} answered GET /admin/usage with ${status}${describeError(body)}\n`,
    );
    return status === 400 ? 2 : 1;
  }
  process.stdout.write(
    values.json ? `${JSON.stringify(body, null, 2)}\n` : formatUsage(body as UsageResponse),
  );
  return 0;
}

/**
 * The table `switchyard usage` prints: a row per group (per day and group with --daily), dearest
 * first, then the total. Cost in dollars to four places, a hundredth of a cent.
 *
 * @example
 * MODEL            REQUESTS  PROMPT  COMPLETION  CACHED  COST
 * gpt-4o           120       48000   9600        0       $0.2160
 * TOTAL            120       48000   9600        0       $0.2160
 */
export function formatUsage(report: UsageResponse): string {
  if (report.data.length === 0) return `No usage from ${report.from} to ${report.to}.\n`;
  const daily = report.interval === 'day';
  const grouped = report.group_by !== 'day' || !daily;
  const header = [
    ...(daily ? ['DAY'] : []),
    ...(grouped ? [report.group_by.toUpperCase()] : []),
    'REQUESTS',
    'PROMPT',
    'COMPLETION',
    'CACHED',
    'COST',
  ];
  const figures = (row: UsageTotals) => [
    String(row.requests),
    String(row.prompt_tokens),
    String(row.completion_tokens),
    String(row.cached_tokens),
    `$${row.cost.toFixed(4)}`,
  ];
  const rows = report.data.map((row) => [
    ...(daily ? [row.day ?? ''] : []),
    ...(grouped ? [row.group ?? '(none)'] : []),
    ...figures(row),
  ]);
  const labels = (daily ? 1 : 0) + (grouped ? 1 : 0);
  const total = ['TOTAL', ...Array.from({ length: labels - 1 }, () => ''), ...figures(report.total)];
  return table(header, [...rows, total]);
}

/** ": <message>" from an OpenAI error envelope, or nothing. */
function describeError(body: unknown): string {
  const message = (body as { error?: { message?: unknown } } | undefined)?.error?.message;
  return typeof message === 'string' ? `: ${message}` : '';
}
