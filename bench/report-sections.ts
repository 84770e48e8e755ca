/** The report's sections past the main tables: modelled S3, hot blob, storms, limits. */
import type { FirstByte } from './honest-s3.ts';
import { fixed, renderRow, ROW_HEADER, sizeLabel } from './report-rows.ts';
import type { BenchResults } from './report.ts';

const MiB = 1024 * 1024;

function firstByteTable(title: string, entries: readonly FirstByte[]): string[] {
  const lines = [
    '',
    title,
    '',
    'Kept-alive connections, one request at a time; S3 requests per miss from the S3 access log.',
    '',
    '| size | system | samples | first byte p50 ms | first byte max ms | last byte p50 ms | ÷ S3 direct first byte | S3 requests per miss |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const entry of entries) {
    const direct = entries.find(
      (candidate) => candidate.size === entry.size && candidate.system.startsWith('S3 direct'),
    );
    lines.push(
      `| ${sizeLabel(entry.size)} | ${entry.system} | ${entry.samples} | ${fixed(entry.firstByteMsP50)} | ${fixed(entry.firstByteMsMax)} | ` +
        `${fixed(entry.lastByteMsP50)} | ${direct === undefined ? '' : fixed(entry.firstByteMsP50 / direct.firstByteMsP50, 2)} | ` +
        `${Object.entries(entry.s3RequestsPerMiss ?? {})
          .filter(([, count]) => count > 0)
          .map(([operation, count]) => `${operation} ${fixed(count, 1)}`)
          .join(', ')} |`,
    );
  }
  return lines;
}

function honestSection(honest: NonNullable<BenchResults['honest']>): string[] {
  const { model } = honest;
  const lines = ['', '## Against a modelled S3, beside nginx caching proxies', ''];
  lines.push(
    `The S3 server (the same versitygw) runs in a network namespace behind a link that delays every packet ${model.oneWayDelayMs} ms each way ` +
      `and paces every TCP connection to ${model.connectionMegabytesPerSecond} MB/s each way (MTU ${model.mtu}); see docs/decisions/0070. ` +
      'The data planes and one nginx caching proxy per data plane (proxy_cache on local disk, proxy_cache_lock) read from it. ' +
      `Link: ${JSON.stringify(honest.link)}.`,
  );
  lines.push(...firstByteTable('### Cold miss, time to first byte', honest.firstBytes));
  lines.push(
    ...firstByteTable(
      '### The same against the loopback S3 server (second line)',
      honest.loopbackFirstBytes,
    ),
  );
  lines.push('', '### Hits and direct S3 over the link', '', ROW_HEADER);
  for (const row of honest.rows) lines.push(renderRow(row));
  lines.push('', '### Miss storm over three instances (S3 GETs from the S3 access log)', '');
  lines.push(
    '| system | instances | requests | blob | S3 GETs | first byte p50 ms | last byte ms | all bodies correct |',
  );
  lines.push('|---|---|---|---|---|---|---|---|');
  for (const storm of honest.storms)
    lines.push(
      `| ${storm.system} | ${storm.processes} | ${storm.requests} | ${sizeLabel(storm.blobBytes)} | ${storm.s3Gets} | ` +
        `${fixed(storm.firstByteMsP50)} | ${fixed(storm.lastByteMs, 0)} | ${storm.allCorrect} |`,
    );
  return lines;
}

function hotSection(hot: NonNullable<BenchResults['hot']>): string[] {
  const total = hot.masters.reduce((sum, master) => sum + master.bytesServed, 0);
  const megabytes = hot.megabytesPerSecond * hot.seconds || 0;
  return [
    '',
    '## Hot blob',
    '',
    `${hot.clients} clients read one ${sizeLabel(hot.blobBytes)} blob at once through ${hot.processes} data-plane processes: ` +
      `${hot.correct}/${hot.clients} complete, ${fixed(hot.megabytesPerSecond, 0)} MB/s, last byte after ${fixed(hot.lastByteMs, 0)} ms. ` +
      `Data planes ${fixed(hot.dataPlaneCpuSeconds, 1)} CPU-s (${fixed(megabytes / hot.dataPlaneCpuSeconds, 0)} MB per CPU-s), ` +
      `Redis servers ${fixed(hot.redisCpuSeconds, 1)} CPU-s.`,
    '',
    '| Redis master | bytes served (INFO total_net_output_bytes delta) | × blob size |',
    '|---|---|---|',
    ...hot.masters.map(
      (master) =>
        `| ${master.port} | ${fixed(master.bytesServed / MiB, 1)} MiB | ${fixed(master.bytesServed / hot.blobBytes, 2)} |`,
    ),
    `| all | ${fixed(total / MiB, 1)} MiB | ${fixed(total / hot.blobBytes, 2)} |`,
  ];
}

function loopbackSection(results: BenchResults): string[] {
  const { storm, drain } = results;
  if (storm === undefined && drain === undefined) return [];
  const lines = ['', '## Cold-miss storm and write-behind drain (loopback S3)', ''];
  if (storm !== undefined)
    lines.push(
      `- ${storm.requests} concurrent GETs of one ${sizeLabel(storm.blobBytes)} blob absent from Redis, over ${storm.processes} data-plane processes: ` +
        `**${storm.s3Gets} S3 GET**, last byte after ${storm.timeToLastByteMs} ms, all bodies correct: ${storm.allCorrect}.`,
    );
  if (drain !== undefined)
    lines.push(
      `- Journal drain (${drain.blobs} × ${sizeLabel(drain.blobBytes)} acknowledged while S3 was down): ${drain.seconds.toFixed(1)} s, ` +
        `${drain.blobsPerSecond.toFixed(0)} blobs/s, ${drain.megabytesPerSecond.toFixed(0)} MB/s.`,
    );
  return lines;
}

function limitsSection(limits: NonNullable<BenchResults['limits']>): string[] {
  return [
    '',
    '## Machine limits (measured in this run)',
    '',
    `- MD5 on one core: ${limits.md5MegabytesPerSecond.toFixed(0)} MB/s (${limits.md5CpuMsPerMegabyte.toFixed(2)} CPU ms per MB). ` +
      'Every PUT hashes each byte once to check its key, on one core per upload, so one data-plane process cannot accept more than this.',
    `- Redis servers: ${limits.redisSetCpuMsPerMegabyte.toFixed(2)} CPU ms per MB stored and replicated (redis-benchmark SET, 1 MiB values); ` +
      `S3 server: ${fixed(limits.s3CpuMsPerMegabyte, 2)} CPU ms per MB stored (write-behind drain).`,
    `- PUT ceiling on ${limits.cores} cores, counting only those costs: ${limits.putCeilingMegabytesPerSecond.toFixed(0)} MB/s; ` +
      `${fixed(limits.sustainedPutCeilingMegabytesPerSecond, 0)} MB/s if every MB must also reach S3. ` +
      'The HTTP client, the data plane and the load generator need CPU on top, so the real ceiling is lower.',
  ];
}

function profileSection(profile: NonNullable<BenchResults['profile']>): string[] {
  return [
    '',
    "## Where the production data plane's time went (BENCH_PROFILE=1)",
    '',
    `Self time by function over the whole main table, from \`profiles/${profile.file}\` (open it in Chrome's DevTools).`,
    '',
    '| share | self ms | function |',
    '|---|---|---|',
    ...profile.top.map(
      (entry) => `| ${fixed(entry.share * 100)} % | ${fixed(entry.selfMs, 0)} | ${entry.where} |`,
    ),
  ];
}

export function renderSections(results: BenchResults): string[] {
  return [
    ...(results.profile === undefined ? [] : profileSection(results.profile)),
    ...(results.honest === undefined ? [] : honestSection(results.honest)),
    ...(results.hot === undefined ? [] : hotSection(results.hot)),
    ...loopbackSection(results),
    ...(results.limits === undefined ? [] : limitsSection(results.limits)),
  ];
}
