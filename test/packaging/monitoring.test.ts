/**
 * The alert rules and the Grafana dashboard the chart ships: checked and unit-tested with
 * Prometheus's own promtool, every expression valid PromQL, and every metric they read
 * either emitted by the code or named as pending with the issue that adds it.
 */
import { expect } from 'chai';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { REPO_ROOT } from '../harness/dataplane.ts';
import { CHART, promtoolBinary, run } from './tools.ts';

const ALERTS = join(CHART, 'files/alerts.yaml');
const DASHBOARD = join(CHART, 'files/dashboard.json');

/** Metrics the dashboard and alerts read before the code emits them, and who adds them. */
const PENDING: Record<string, string> = {
  blobcache_operator_backfill_progress_ratio: 'issue 13 (cold start and backfill)',
};

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { refId: string; expr: string }[];
}
const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
  uid: string;
  title: string;
  templating: { list: { name: string; type: string }[] };
  panels: Panel[];
};
const graphs = dashboard.panels.filter((panel) => panel.type !== 'row');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** Every metric the data plane and the operator register (prom-client `name:` fields). */
function emittedMetrics(): Set<string> {
  const names = new Set<string>();
  for (const dir of ['dataplane/src', 'operator/src']) {
    for (const file of sourceFiles(join(REPO_ROOT, dir))) {
      for (const match of readFileSync(file, 'utf8').matchAll(/name: '(blobcache_\w+)'/g)) {
        names.add(match[1]!);
      }
    }
  }
  return names;
}

/** Metric names in PromQL, histogram series reduced to the histogram's name. */
function metricsIn(expr: string): string[] {
  return [...expr.matchAll(/\b(blobcache_\w+)\b/g)].map((match) =>
    match[1]!.replace(/_(bucket|sum|count)$/, ''),
  );
}

const alertRules = () =>
  (
    parse(readFileSync(ALERTS, 'utf8')) as {
      groups: { rules: { alert: string; expr: string }[] }[];
    }
  ).groups.flatMap((group) => group.rules);

describe('alert rules and dashboard', function () {
  this.timeout(60_000);

  it('the alert rules pass promtool check rules', () => {
    const checked = run(promtoolBinary(), ['check', 'rules', ALERTS]);
    expect(checked.status, checked.stdout + checked.stderr).to.equal(0);
    expect(checked.stdout).to.match(/SUCCESS: \d+ rules found/);
  });

  it("each alert fires on its failure and stays quiet on a healthy cache (promtool's rule tests)", () => {
    const tests = join(import.meta.dirname, 'fixtures/alerts.test.yaml');
    const tested = run(promtoolBinary(), ['test', 'rules', tests]);
    expect(tested.status, tested.stdout + tested.stderr).to.equal(0);
    // Every alert of the file has a test.
    const alerts = alertRules().map((rule) => rule.alert);
    const covered = readFileSync(tests, 'utf8');
    expect(alerts.filter((alert) => !covered.includes(`alertname: ${alert}`))).to.deep.equal([]);
  });

  it('every dashboard query is valid PromQL', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'blobcache-dashboard-'));
    try {
      // promtool checks PromQL in rule files: each query becomes a recording rule, with
      // Grafana's variables replaced by values of the right kind.
      const rules = graphs.flatMap((panel) =>
        (panel.targets ?? []).map((target) => ({
          record: `dashboard:panel_${panel.id}_${target.refId}`,
          expr: target.expr
            .replaceAll('$__rate_interval', '5m')
            .replaceAll('$__range', '6h')
            .replaceAll('$namespace', 'shop')
            .replaceAll('$blobcache', 'droplets'),
        })),
      );
      const file = join(dir, 'dashboard.rules.yaml');
      writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules }] }));
      const checked = run(promtoolBinary(), ['check', 'rules', file]);
      expect(checked.status, checked.stdout + checked.stderr).to.equal(0);
      expect(checked.stdout).to.include(`SUCCESS: ${rules.length} rules found`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads only metrics the code emits, or pending ones named with the issue adding them', () => {
    const emitted = emittedMetrics();
    const used = new Set([
      ...alertRules().flatMap((rule) => metricsIn(rule.expr)),
      ...graphs.flatMap((panel) => (panel.targets ?? []).flatMap((t) => metricsIn(t.expr))),
    ]);
    expect(used.size).to.be.greaterThan(10);
    const unknown = [...used].filter((name) => !emitted.has(name) && !(name in PENDING));
    expect(unknown, 'metrics neither emitted nor pending').to.deep.equal([]);
    const landed = Object.keys(PENDING).filter((name) => emitted.has(name));
    expect(landed, 'pending metrics the code now emits: take them off PENDING').to.deep.equal([]);
    // docs/operations.md lists every metric the alerts and dashboard read.
    const operations = readFileSync(join(REPO_ROOT, 'docs/operations.md'), 'utf8');
    expect([...used].filter((name) => !operations.includes(name))).to.deep.equal([]);
  });

  it('the dashboard shows what an operator of the cache watches', () => {
    expect(dashboard.uid).to.equal('blobcache');
    expect(dashboard.templating.list.map((variable) => variable.name)).to.deep.equal([
      'datasource',
      'namespace',
      'blobcache',
    ]);
    const ids = dashboard.panels.map((panel) => panel.id);
    expect(new Set(ids).size, 'panel ids are unique').to.equal(ids.length);
    for (const panel of graphs) {
      expect(panel.datasource?.uid, panel.title).to.equal('${datasource}');
      expect(panel.targets, panel.title).to.have.length.greaterThan(0);
      expect(panel.gridPos.x + panel.gridPos.w, panel.title).to.be.at.most(24);
    }
    const queries = (pattern: RegExp) =>
      graphs.filter((panel) => (panel.targets ?? []).some((target) => pattern.test(target.expr)));
    const topics: [string, RegExp][] = [
      ['hit ratio', /blobcache_cache_requests_total\{[^}]*result="hit"/],
      ['request rate by route', /sum by \(method, route\) \(rate\(blobcache_http_requests_total/],
      ['latency by route', /histogram_quantile\(0\.99, sum by \(le, route\)/],
      ['bytes in', /blobcache_bytes_received_total/],
      ['bytes out', /blobcache_bytes_sent_total/],
      ['journal backlog', /blobcache_journal_backlog/],
      ['oldest pending blob', /blobcache_journal_oldest_pending_seconds/],
      ['blobs lost', /blobcache_journal_lost_total/],
      ['fills by result', /sum by \(result\) \(rate\(blobcache_fills_total/],
      ['slots not covered', /blobcache_operator_slots_uncovered/],
      ["replicas in their master's zone", /blobcache_operator_replicas_in_master_zone/],
      ['backfill progress', /blobcache_operator_backfill_progress_ratio/],
      ['5xx rate', /status=~"5\.\."/],
    ];
    expect(
      topics.filter(([, pattern]) => queries(pattern).length === 0).map(([t]) => t),
    ).to.deep.equal([]);
  });
});
