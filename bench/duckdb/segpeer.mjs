// segpeer.mjs — the DuckDB peer of bench/bench_segment10m.c.
//
//   node segpeer.mjs --db DIR/duck.db --csv DIR/csv --queries DIR/duck-queries.json --runs N
//                    [--load-only]
//
// When --db does not exist yet, loads the CSV files that bench_segment10m
// exported from the Siyu store (customer, tag, employee, customer_tag sorted
// by tag, relationship, event sorted by type and time) into it and prints
// {"load_s": seconds}. Then, unless --load-only, runs each query of the JSON
// file ([{name, ids, page}]: ids selects the customer ids, page the first page
// as (id, sort key)): once to warm up and checksum, then N times counted
// (SELECT count(*) FROM (ids)) and N times the first page, and prints one JSON
// line per query: {"q", "count", "sum", "page_sum", "count_p50", "count_p99",
// "page_p50", "page_p99"} (milliseconds; checksums as 16 hex digits, FNV-1a
// 64 over the sorted ids, and over the page's (id, key) pairs in order, as
// the C side computes them). Only the queries are timed, not the loading.
import { DuckDBInstance } from '@duckdb/node-api';
import { existsSync, readFileSync } from 'node:fs';

const args = {};
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--load-only') args.loadOnly = true;
  else if (a.startsWith('--') && i + 1 < process.argv.length) args[a.slice(2)] = process.argv[++i];
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
    `CREATE TABLE customer AS SELECT * FROM ${csv('customer.csv', { id: 'INTEGER', region: 'VARCHAR', stage: 'VARCHAR' })} ORDER BY id`,
    `CREATE TABLE tag AS SELECT * FROM ${csv('tag.csv', { id: 'INTEGER', name: 'VARCHAR' })}`,
    `CREATE TABLE employee AS SELECT * FROM ${csv('employee.csv', { id: 'INTEGER', name: 'VARCHAR' })}`,
    // Memberships sorted by tag, so the zone maps of tag_id skip the other tags.
    `CREATE TABLE customer_tag AS SELECT * FROM ${csv('customer_tag.csv', { tag_id: 'INTEGER', customer_id: 'INTEGER' })} ORDER BY tag_id, customer_id`,
    `CREATE TABLE relationship AS SELECT * FROM ${csv('relationship.csv', { customer_id: 'INTEGER', employee_id: 'INTEGER', status: 'VARCHAR' })} ORDER BY customer_id`,
    // Events sorted by type and time, so a window of one type reads few row groups.
    `CREATE TABLE event AS SELECT * FROM ${csv('event.csv', { customer_id: 'INTEGER', type: 'VARCHAR', ts: 'BIGINT', cents: 'BIGINT' })} ORDER BY type, ts`,
    'CHECKPOINT',
  ];
  for (const sql of load) await con.run(sql);
  console.log(JSON.stringify({ load_s: (performance.now() - t0) / 1000 }));
}
if (args.loadOnly) process.exit(0);

const FNV_OFF = 1469598103934665603n;
const FNV_PRIME = 1099511628211n;
const fnv = (h, v) => BigInt.asUintN(64, (h ^ BigInt.asUintN(64, BigInt(v))) * FNV_PRIME);
const hex = (h) => h.toString(16).padStart(16, '0');
const pct = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return [s[Math.floor(s.length / 2)], s[Math.floor((s.length * 99) / 100)]];
};

const queries = JSON.parse(readFileSync(args.queries, 'utf8'));
for (const q of queries) {
  // Warm-up and checksums.
  const all = await con.runAndReadAll(`${q.ids} ORDER BY 1`);
  let h = FNV_OFF;
  let n = 0;
  for (const id of all.getColumns()[0] ?? []) {
    h = fnv(h, id);
    n++;
  }
  const countSql = `SELECT count(*) FROM (${q.ids})`;
  const countLat = [];
  for (let r = 0; r < runs; r++) {
    const a = performance.now();
    const c = await con.runAndReadAll(countSql);
    countLat.push(performance.now() - a);
    if (Number(c.getRows()[0][0]) !== n) throw new Error(`${q.name}: count differs between runs`);
  }
  const pageLat = [];
  let ph = FNV_OFF;
  for (let r = 0; r < runs; r++) {
    const a = performance.now();
    const p = await con.runAndReadAll(q.page);
    pageLat.push(performance.now() - a);
    ph = FNV_OFF;
    for (const [id, key] of p.getRows()) ph = fnv(fnv(ph, id), key);
  }
  const [count_p50, count_p99] = pct(countLat);
  const [page_p50, page_p99] = pct(pageLat);
  console.log(
    JSON.stringify({ q: q.name, count: n, sum: hex(h), page_sum: hex(ph), count_p50, count_p99, page_p50, page_p99 }),
  );
}
