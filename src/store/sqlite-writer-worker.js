// The SQLite writer thread. It owns one connection and runs every bulk insert the main thread
// sends, so a commit or a WAL checkpoint (which fsyncs) never blocks the event loop that serves
// requests. Plain JavaScript so that Node runs it as it is, from src/ under the tests and from
// dist/ in production.
//
// Protocol: the main thread posts { id, table, columns, rows } where rows is a JSON array of
// objects holding those columns, or { id, close: true }. The thread answers { id } on success
// or { id, error } on failure.

import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import Sqlite from 'libsql';

// Writes can wait; requests cannot. Where the kernel allows it (Linux: a thread is a task with
// its own id, and /proc/thread-self names it), this thread runs at a lower priority, so that on a
// busy core a batch insert yields to the event loop instead of stalling requests for
// milliseconds. Nice 5 still leaves it about a fifth of a contended core, several times what the
// writes need.
try {
  const threadId = Number(readlinkSync('/proc/thread-self').split('/').pop());
  if (Number.isInteger(threadId)) setPriority(threadId, 5);
} catch {
  // Not Linux, or not permitted: run at normal priority.
}

/** @type {{ path: string, rowsPerStatement: number }} */
const { path, rowsPerStatement } = workerData;
const database = new Sqlite(path);
database.exec('pragma journal_mode = wal; pragma synchronous = normal; pragma busy_timeout = 5000;');

/** @type {Map<string, { many: any, one: any }>} */
const statements = new Map();

/**
 * @param {string} table
 * @param {string[]} columns
 */
function statementsFor(table, columns) {
  const key = `${table}(${columns.join(',')})`;
  let found = statements.get(key);
  if (found === undefined) {
    const row = `(${columns.map(() => '?').join(', ')})`;
    const sql = (/** @type {number} */ rows) =>
      `insert into ${table} (${columns.join(', ')}) values ${Array(rows).fill(row).join(', ')}`;
    found = { many: database.prepare(sql(rowsPerStatement)), one: database.prepare(sql(1)) };
    statements.set(key, found);
  }
  return found;
}

/**
 * @param {string} table
 * @param {string[]} columns
 * @param {string} rows
 */
function insert(table, columns, rows) {
  const { many, one } = statementsFor(table, columns);
  /** @type {unknown[]} */
  const values = [];
  for (const row of JSON.parse(rows)) for (const column of columns) values.push(row[column] ?? null);
  const width = columns.length;
  const chunk = width * rowsPerStatement;
  database.exec('begin');
  try {
    let from = 0;
    for (; from + chunk <= values.length; from += chunk) many.run(values.slice(from, from + chunk));
    for (; from < values.length; from += width) one.run(values.slice(from, from + width));
    database.exec('commit');
  } catch (error) {
    database.exec('rollback');
    throw error;
  }
}

parentPort?.on('message', (message) => {
  if (message.close) {
    database.close();
    parentPort?.postMessage({ id: message.id });
    parentPort?.close();
    return;
  }
  try {
    insert(message.table, message.columns, message.rows);
    parentPort?.postMessage({ id: message.id });
  } catch (error) {
    parentPort?.postMessage({
      id: message.id,
      error: error instanceof Error ? error.message : String(error),
    });
  }
});
