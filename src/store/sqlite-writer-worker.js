// The SQLite writer thread. It owns one connection and runs every bulk insert the main thread
// sends, so a commit or a WAL checkpoint (which fsyncs) never blocks the event loop that serves
// requests. Plain JavaScript so that Node runs it as it is, from src/ under the tests and from
// dist/ in production.
//
// Protocol: the main thread posts { id, table, columns, values } where values is the rows
// flattened (columns.length values per row), or { id, close: true }. The thread answers
// { id } on success or { id, error } on failure.

import { parentPort, workerData } from 'node:worker_threads';
import Sqlite from 'libsql';

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
 * @param {unknown[]} values
 */
function insert(table, columns, values) {
  const { many, one } = statementsFor(table, columns);
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
    insert(message.table, message.columns, message.values);
    parentPort?.postMessage({ id: message.id });
  } catch (error) {
    parentPort?.postMessage({
      id: message.id,
      error: error instanceof Error ? error.message : String(error),
    });
  }
});
