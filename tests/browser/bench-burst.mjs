// A benchmark, not a test (CI does not run it): how long a burst of alerts holds the
// console's main thread. N alerts (default 800) are raised from 8 producers as fast as the
// server takes them into a console signed in as a nurse on their patient; it prints how long
// until every row was shown, and the page's long tasks (the main thread busy for 50 ms or
// more: clicks and typing wait for them) as their count, total and longest.
//
//   cd tests/browser && VIGIL_BIN=../../target/release/vigil N=800 node bench-burst.mjs
//
// Figures and what they measured: docs/console.md, "A burst of alerts".

import { Vigil, launchBrowser } from './harness.mjs';

const N = Number(process.env.N || 800);
const PRODUCERS = 8;
const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'];

const vigil = await Vigil.start('bench-burst');
const browser = await launchBrowser();
try {
  const nurse = await vigil.token('nina', 'nurse');
  await vigil.assignCareTeam('p-burst', 'nina');
  const context = await browser.newContext();
  await context.addInitScript(() => {
    window.longTasks = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.longTasks.push(e.duration);
    }).observe({ type: 'longtask', buffered: true });
  });
  const page = await context.newPage();
  await page.goto(`${vigil.baseUrl}/`);
  await page.fill('#token-input', nurse);
  await page.click('#sign-in');
  await page.waitForSelector('#connection-status[data-state="live"]', { timeout: 10000 });
  await page.evaluate(() => { window.longTasks.length = 0; });

  const producers = await Promise.all(
    Array.from({ length: PRODUCERS }, (_, i) => vigil.token(`producer-${i}`, 'service')));
  const started = Date.now();
  await Promise.all(producers.map(async (token, p) => {
    for (let i = p; i < N; i += PRODUCERS) {
      const r = await vigil.api('POST', '/api/v1/alerts', {
        token,
        body: { patient_id: 'p-burst', severity: SEVERITIES[i % 5], kind: 'bench', title: `burst ${i}` },
      });
      if (r.status !== 201) throw new Error(`alert ${i}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    }
  }));
  const raised = Date.now() - started;
  await page.waitForFunction((n) => document.querySelectorAll('li.alert-row').length >= n, N, { timeout: 120000 });
  const shown = Date.now() - started;
  // Long tasks still running when the last row appeared are reported once they end.
  await page.waitForTimeout(1000);
  const tasks = await page.evaluate(() => window.longTasks);
  const total = tasks.reduce((a, b) => a + b, 0);
  console.log(`${N} alerts raised in ${raised} ms, all shown after ${shown} ms`);
  console.log(`long tasks: ${tasks.length}, ${Math.round(total)} ms in all, longest ${Math.round(Math.max(0, ...tasks))} ms`);
} finally {
  await browser.close();
  await vigil.dispose();
}
