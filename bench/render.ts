/** Re-renders a result's Markdown report from its JSON: node bench/render.ts <result.json> */
import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { renderReport, type BenchResults } from './report.ts';

const source = process.argv[2];
if (source === undefined) throw new Error('usage: node bench/render.ts <result.json>');
const results = JSON.parse(readFileSync(source, 'utf8')) as BenchResults;
const name = basename(source, '.json');
writeFileSync(source.replace(/\.json$/, '.md'), renderReport(results, `${name}.png`));
