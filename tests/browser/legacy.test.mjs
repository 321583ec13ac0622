// Scenario 4: the legacy WebSocket dashboard (/legacy) receives the same alert as the SSE
// console and acknowledges it in-socket; the console reflects the change without a reload.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Vigil, launchBrowser, newPage, signInConsole, connectLegacy, screenshot, rowSel, rowCount, waitUntil,
} from './harness.mjs';

const PATIENT = 'p-404';
let vigil;
let browser;

before(async () => {
  vigil = await Vigil.start('legacy');
  await vigil.assignCareTeam(PATIENT, 'dave');
  await vigil.assignCareTeam(PATIENT, 'erin');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await vigil?.dispose();
});

test('4. the legacy dashboard gets the alert, acknowledges it in-socket, and the console follows', async () => {
  const legacy = await newPage(browser);
  const wsFrames = [];
  legacy.on('websocket', (ws) => {
    ws.on('framesent', (f) => wsFrames.push({ dir: 'out', data: String(f.payload) }));
    ws.on('framereceived', (f) => wsFrames.push({ dir: 'in', data: String(f.payload) }));
  });
  await connectLegacy(legacy, vigil, await vigil.token('dave', 'nurse'));
  assert.match(await legacy.textContent('#who'), /dave \(nurse\)/);
  await legacy.fill('#patient-ids', PATIENT);
  await legacy.click('#subscribe');
  await legacy.waitForFunction(
    (p) => document.getElementById('subscribed-to').textContent === `Subscribed to: ${p}`, PATIENT,
  );

  const consolePage = await newPage(browser);
  await signInConsole(consolePage, vigil, await vigil.token('erin', 'nurse'));
  await consolePage.evaluate(() => { window.__vigilNoReload = 'still here'; });

  const t0 = Date.now();
  const alert = await vigil.raiseAlert({ patient_id: PATIENT, severity: 'high', title: 'Respiratory rate 32' });
  await Promise.all([
    legacy.waitForSelector(`${rowSel(alert.id)}[data-status="open"]`, { timeout: 2000 }),
    consolePage.waitForSelector(`${rowSel(alert.id)}[data-status="open"]`, { timeout: 2000 }),
  ]);
  assert.ok(Date.now() - t0 < 2000);
  assert.equal(await rowCount(legacy, alert.id), 1);
  assert.equal(await legacy.textContent('#open-count'), '1');
  await screenshot(legacy, '4-legacy-alert-shown');

  // Acknowledge in the legacy page: an in-socket `ack` frame, answered by `ack_result`.
  const row = legacy.locator(rowSel(alert.id));
  await row.locator('.note-input').fill('seen on the ward dashboard');
  await row.locator('button[data-action="acknowledged"]').click();
  await legacy.waitForSelector(`${rowSel(alert.id)}[data-status="acknowledged"]`, { timeout: 5000 });
  await consolePage.waitForSelector(`${rowSel(alert.id)}[data-status="acknowledged"]`, { timeout: 5000 });

  const sent = wsFrames.filter((f) => f.dir === 'out').map((f) => JSON.parse(f.data));
  assert.ok(sent.some((f) => f.type === 'ack' && f.alert_id === alert.id && f.status === 'acknowledged'),
    `an in-socket ack frame was sent: ${JSON.stringify(sent)}`);
  const received = wsFrames.filter((f) => f.dir === 'in').map((f) => JSON.parse(f.data));
  assert.ok(received.some((f) => f.type === 'ack_result' && f.alert_id === alert.id && f.ok === true),
    'the server answered ack_result ok');
  assert.equal(await row.locator('.row-error').textContent(), '');
  assert.equal(await legacy.textContent('#ws-errors'), '');

  assert.equal(await consolePage.evaluate(() => window.__vigilNoReload), 'still here', 'the console was reloaded');
  assert.equal(await rowCount(consolePage, alert.id), 1);
  assert.equal(await consolePage.textContent('#open-count'), '0');
  assert.match(await consolePage.locator(`${rowSel(alert.id)} details.trail summary`).textContent(), /Acknowledged by dave \(nurse\)/);

  const stored = await waitUntil(async () => {
    const a = await vigil.getAlert(await vigil.token('erin', 'nurse'), alert.id);
    return a.status === 'acknowledged' && a;
  }, { message: 'acknowledged status via the API' });
  assert.equal(stored.acknowledgments.at(-1).user_id, 'dave');
  assert.equal(stored.acknowledgments.at(-1).note, 'seen on the ward dashboard');

  await screenshot(legacy, '4-legacy-acknowledged');
  await screenshot(consolePage, '4-console-sees-legacy-ack');
  assert.deepEqual(legacy.problems, []);
  assert.deepEqual(consolePage.problems, []);
});

test('care team: a change reaches the legacy dashboard: the new patient\'s open alert appears', async () => {
  const earlier = await vigil.raiseAlert({ patient_id: 'p-505', severity: 'critical', title: 'SpO2 80' });
  const legacy = await newPage(browser);
  await connectLegacy(legacy, vigil, await vigil.token('fay', 'nurse'));
  assert.equal(await rowCount(legacy, earlier.id), 0, 'not on p-505\'s team yet');
  await vigil.assignCareTeam('p-505', 'fay');
  await legacy.waitForSelector(`${rowSel(earlier.id)}[data-status="open"]`, { timeout: 5000 });
  await vigil.removeFromCareTeam('p-505', 'fay');
  await legacy.waitForSelector(rowSel(earlier.id), { state: 'detached', timeout: 5000 });
  await screenshot(legacy, 'care-team-legacy');
  assert.deepEqual(legacy.problems, []);
});

test('the legacy dashboard shows every unresolved alert, and drops rows a subscribe leaves out', async () => {
  await vigil.assignCareTeam('p-901', 'gus');
  await vigil.assignCareTeam('p-902', 'gus');
  const old = await vigil.raiseAlert({ patient_id: 'p-901', severity: 'critical', title: 'VF, still open' });
  for (let i = 0; i < 105; i++) {
    await vigil.raiseAlert({ patient_id: 'p-902', severity: 'info', title: `Routine ${i}` });
  }
  const legacy = await newPage(browser);
  await connectLegacy(legacy, vigil, await vigil.token('gus', 'nurse'));
  await legacy.waitForSelector(`${rowSel(old.id)}[data-status="open"]`, { timeout: 5000 });
  await legacy.fill('#patient-ids', 'p-902');
  await legacy.click('#subscribe');
  await legacy.waitForSelector(rowSel(old.id), { state: 'detached', timeout: 5000 });
  assert.deepEqual(legacy.problems, []);
});

test('a silent socket is given up: the legacy dashboard shows offline, then catches up once the server answers', async () => {
  await vigil.assignCareTeam('p-606', 'hal');
  const legacy = await newPage(browser);
  let pongs = 0;
  legacy.on('websocket', (ws) => ws.on('framereceived', (f) => {
    if (String(f.payload) === '{"type":"pong"}') pongs += 1;
  }));
  await connectLegacy(legacy, vigil, await vigil.token('hal', 'nurse'));
  // The page pings while the server answers; a pong is life like any other frame.
  await waitUntil(() => pongs >= 2, { timeout: 10000, message: 'two pongs to the page\'s pings' });
  assert.equal(await legacy.getAttribute('#connection-status', 'data-state'), 'live');

  // A frozen server keeps its sockets open and says nothing: no close event ever comes.
  vigil.freeze();
  try {
    await legacy.waitForSelector('#connection-status[data-state="offline"]', { timeout: 20000 });
    assert.match(await legacy.textContent('#ws-errors'), /silent: no frame from the server/);
    assert.match(await legacy.textContent('#notice'), /No answer from the server for \d+ s\. Reconnecting in/);
    await screenshot(legacy, 'legacy-silent-socket');
  } finally {
    vigil.thaw();
  }
  await legacy.waitForSelector('#connection-status[data-state="live"]', { timeout: 20000 });
  const after = await vigil.raiseAlert({ patient_id: 'p-606', severity: 'critical', title: 'SpO2 82' });
  await legacy.waitForSelector(`${rowSel(after.id)}[data-status="open"]`, { timeout: 5000 });
  assert.equal(await rowCount(legacy, after.id), 1);
});

test('a keyboard user stays on the row: focus returns to the action button after ack_result', async () => {
  await vigil.assignCareTeam('p-707', 'ivy');
  const legacy = await newPage(browser);
  await connectLegacy(legacy, vigil, await vigil.token('ivy', 'nurse'));
  const a = await vigil.raiseAlert({ patient_id: 'p-707', severity: 'high', title: 'Temp 39.8' });
  await legacy.waitForSelector(`${rowSel(a.id)}[data-status="open"]`, { timeout: 5000 });
  await legacy.locator(`${rowSel(a.id)} button[data-action="acknowledged"]`).focus();
  await legacy.keyboard.press('Enter');
  await legacy.waitForSelector(`${rowSel(a.id)}[data-status="acknowledged"]`, { timeout: 5000 });
  await waitUntil(() => legacy.evaluate((id) => {
    const f = document.activeElement;
    return f && f.dataset.action === 'acknowledged' && f.closest('.alert-row')?.dataset.alertId === id;
  }, a.id), { timeout: 5000, message: 'focus back on the row\'s acknowledge button' });
  assert.deepEqual(legacy.problems, []);
});
