// Scenario 3: Vigil is stopped (SIGTERM) and started again on the same port and database.
// The console shows "reconnecting", then "live", and shows every alert raised around the
// restart exactly once: one raised right before the stop (the page may or may not have seen
// it live), two raised right after the restart (before the page is back).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Vigil, launchBrowser, newPage, signInConsole, screenshot, rowSel, rowCount,
} from './harness.mjs';

const PATIENT = 'p-303';
let vigil;
let browser;

before(async () => {
  vigil = await Vigil.start('restart');
  await vigil.assignCareTeam(PATIENT, 'carol');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await vigil?.dispose();
});

test('3. after a server restart the console reconnects and shows what was raised meanwhile, once each', async () => {
  const page = await newPage(browser);
  const streamUrls = [];
  page.on('request', (r) => { if (r.url().includes('/api/v1/alerts/stream')) streamUrls.push(new URL(r.url())); });
  await signInConsole(page, vigil, await vigil.token('carol', 'nurse'));

  // One alert seen live before anything happens.
  const seen = await vigil.raiseAlert({ patient_id: PATIENT, severity: 'medium', title: 'SpO2 91%' });
  await page.waitForSelector(rowSel(seen.id), { timeout: 2000 });

  // One raised right before the stop: committed (201), maybe not yet delivered.
  const beforeStop = await vigil.raiseAlert({ patient_id: PATIENT, severity: 'high', title: 'Raised right before the stop' });
  const stopped = await vigil.stop({ signal: 'SIGTERM' });
  assert.ok(stopped.code === 0 || stopped.signal === 'SIGTERM', `vigil exited with ${JSON.stringify(stopped)}`);

  await page.waitForSelector('#connection-status[data-state="reconnecting"]', { timeout: 10000 });
  await screenshot(page, '3-restart-reconnecting');
  const streamsBeforeRestart = streamUrls.length;

  await vigil.restart();
  const afterRestart = [];
  for (const title of ['Raised after the restart (1)', 'Raised after the restart (2)']) {
    afterRestart.push(await vigil.raiseAlert({ patient_id: PATIENT, severity: 'critical', title }));
  }

  // Back to live (the page retries with backoff: 1, 2, 4 … s).
  await page.waitForSelector('#connection-status[data-state="live"]', { timeout: 30000 });
  for (const a of [seen, beforeStop, ...afterRestart]) {
    await page.waitForSelector(rowSel(a.id), { timeout: 5000 });
  }
  // The page resumed from where it was (Last-Event-ID as a query), not from scratch.
  const resumed = streamUrls.slice(streamsBeforeRestart).map((u) => Number(u.searchParams.get('last_event_id')));
  assert.ok(resumed.length > 0, 'the page opened a new stream after the restart');
  assert.ok(resumed.at(-1) >= seen.seq, `resumed from last_event_id=${resumed.at(-1)}, expected >= ${seen.seq}`);

  // One more, live on the new process, to prove the stream is really flowing again.
  const live = await vigil.raiseAlert({ patient_id: PATIENT, severity: 'low', title: 'Live after the restart' });
  await page.waitForSelector(rowSel(live.id), { timeout: 2000 });

  for (const a of [seen, beforeStop, ...afterRestart, live]) {
    assert.equal(await rowCount(page, a.id), 1, `rows for alert "${a.title}"`);
  }
  assert.equal(await page.locator('li.alert-row').count(), 5);
  assert.equal(await page.textContent('#open-count'), '5');
  // Newest first, by creation sequence.
  const order = await page.locator('li.alert-row').evaluateAll((lis) => lis.map((li) => li.dataset.alertId));
  assert.deepEqual(order, [live, ...afterRestart.slice().reverse(), beforeStop, seen].map((a) => a.id));
  await screenshot(page, '3-restart-live-again');
  assert.deepEqual(page.problems, []);
});
