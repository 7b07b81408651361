// anpeer.mjs — the DuckDB peer of bench/bench_analytics.c.
//
//   node anpeer.mjs --db DIR/duck-an.db --csv DIR/csv-an --queries FILE.json --runs N
//
// When --db does not exist yet, loads the CSV files that bench_analytics
// exported from the Siyu store (customer, relationship, event sorted by type
// and time) and prints {"load_s": seconds}. Then, for each query set of the
// JSON file ([{name, sql: [...]}]), runs its statements once to warm up and
// keep the rows, then N times timed (the set's statements one after the
// other), and prints one JSON line per set: {"q", "rows": [[[...], ...], ...],
// "p50", "p99"} (milliseconds). The C side reduces the rows to the same
// answer shape as Siyu's and checksums it. Only the queries are timed.
import { DuckDBInstance } from '@duckdb/node-api';
import { existsSync, readFileSync } from 'node:fs';

const args = {};
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a.startsWith('--') && i + 1 < process.argv.length) args[a.slice(2)] = process.argv[++i];
  else throw new Error(`unknown argument ${a}`);
}
for (const k of ['db', 'csv', 'queries', 'runs'])
  if (!args[k]) throw new Error(`--${k} is required`);
const runs = Number(args.runs);
if (!Number.isInteger(runs) || runs < 1 || runs > 1000) throw new Error('--runs 1..1000');

const fresh = !existsSync(args.db);
const instance = await DuckDBInstance.create(args.db);
const con = await instance.connect();

if (fresh) {
  const t0 = performance.now();
  const csv = (file, cols) => {
    const c = Object.entries(cols).map(([k, v]) => `'${k}': '${v}'`).join(', ');
    return `read_csv('${args.csv}/${file}', header = false, nullstr = '', columns = {${c}})`;
  };
  const load = [
    `CREATE TABLE customer AS SELECT * FROM ${csv('customer.csv', { id: 'INTEGER', first_added_at: 'BIGINT' })} ORDER BY id`,
    `CREATE TABLE relationship AS SELECT * FROM ${csv('relationship.csv', { customer_id: 'INTEGER', employee_id: 'INTEGER', status: 'VARCHAR', added_at: 'BIGINT', ended_at: 'BIGINT', updated_at: 'BIGINT' })} ORDER BY added_at`,
    // Events sorted by type and time, so a window of one type reads few row groups.
    `CREATE TABLE event AS SELECT * FROM ${csv('event.csv', { customer_id: 'INTEGER', type: 'VARCHAR', ts: 'BIGINT' })} ORDER BY type, ts`,
    'CHECKPOINT',
  ];
  for (const sql of load) await con.run(sql);
  console.log(JSON.stringify({ load_s: (performance.now() - t0) / 1000 }));
}

const pct = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return [s[Math.floor(s.length / 2)], s[Math.min(s.length - 1, Math.floor((s.length * 99) / 100))]];
};
const num = (v) => (typeof v === 'bigint' ? Number(v) : v === null ? 0 : Number(v));

const queries = JSON.parse(readFileSync(args.queries, 'utf8'));
for (const q of queries) {
  const rows = [];
  for (const sql of q.sql) {
    const r = await con.runAndReadAll(sql);
    rows.push(r.getRows().map((row) => row.map(num)));
  }
  const lat = [];
  for (let i = 0; i < runs; i++) {
    const a = performance.now();
    for (const sql of q.sql) await con.runAndReadAll(sql);
    lat.push(performance.now() - a);
  }
  const [p50, p99] = pct(lat);
  console.log(JSON.stringify({ q: q.name, rows, p50, p99 }));
}
