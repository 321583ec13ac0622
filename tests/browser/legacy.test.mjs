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

  const alert = await vigil.raiseAlert({ patient_id: PATIENT, severity: 'high', title: 'Respiratory rate 32' });
  await Promise.all([
    legacy.waitForSelector(`${rowSel(alert.id)}[data-status="open"]`),
    consolePage.waitForSelector(`${rowSel(alert.id)}[data-status="open"]`),
  ]);
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
  assert.match(await legacy.textContent('#scope-note'), /you now also see patient p-505\.$/);
  await vigil.removeFromCareTeam('p-505', 'fay');
  await legacy.waitForSelector(rowSel(earlier.id), { state: 'detached', timeout: 5000 });
  // Said in words, not only by the row vanishing.
  assert.match(await legacy.textContent('#scope-note'),
    /^Care team changed at .+: you are no longer on the care team of patient p-505 \(1 alert no longer shown\)\.$/);
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

// ---- Helpers for the audit fixes below -------------------------------------------------

/**
 * Raises `n` alerts fast: spread over several service subjects (the write rate is per `sub`,
 * 200/s in bursts of 400), a few requests in flight each; a 429 is waited out and retried.
 */
async function raiseMany(v, n, fields) {
  const perSub = 300;
  const subs = Math.ceil(n / perSub);
  const raised = [];
  await Promise.all(Array.from({ length: subs }, async (_, s) => {
    const token = await v.token(`bulk-producer-${s}`, 'service');
    let next = s * perSub;
    const end = Math.min(n, next + perSub);
    await Promise.all(Array.from({ length: 6 }, async () => {
      while (next < end) {
        const i = next++;
        for (;;) {
          const r = await v.api('POST', '/api/v1/alerts', {
            token,
            body: { patient_id: 'p-0', severity: 'low', kind: 'bulk', title: `Bulk ${i}`, ...fields(i) },
          });
          if (r.status === 201) { raised[i] = r.body; break; }
          if (r.status !== 429) throw new Error(`POST /api/v1/alerts: HTTP ${r.status} ${JSON.stringify(r.body)}`);
          await new Promise((res) => setTimeout(res, 1000 * Number(r.headers.get('retry-after') || 1)));
        }
      }
    }));
  }));
  return raised;
}


/**
 * Routes the page's WebSockets through Playwright so a test can cut them: `cut()` closes the
 * current one and refuses new ones until `restore()`. `onServerFrame(fn)` sees every frame
 * the server sends the page.
 */
async function cuttableSocket(page) {
  let blocked = false;
  const open = new Set();
  const watchers = new Set();
  await page.routeWebSocket(/\/ws(\?|$)/, (ws) => {
    if (blocked) { ws.close({ code: 1011, reason: 'cut by the test' }); return; }
    const server = ws.connectToServer();
    open.add(ws);
    server.onMessage((m) => { for (const w of watchers) w(String(m)); ws.send(m); });
    ws.onMessage((m) => server.send(m));
    server.onClose((code, reason) => { open.delete(ws); ws.close({ code, reason }); });
    ws.onClose((code, reason) => { open.delete(ws); server.close({ code, reason }); });
  });
  return {
    cut() {
      blocked = true;
      for (const ws of open) ws.close({ code: 1011, reason: 'cut by the test' });
      open.clear();
    },
    restore() { blocked = false; },
    onServerFrame(fn) { watchers.add(fn); return () => watchers.delete(fn); },
  };
}

/** Relative luminance contrast of two CSS rgb() colours (WCAG 2). */
function contrast(a, b) {
  const lum = (css) => {
    const [r, g, bl] = css.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number).map((v) => {
      const c = v / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

const BIDI = /[\u202A-\u202E\u2066-\u2069]/;

// ---- 1. Unresolved alerts beyond 500 --------------------------------------------------------

test('audit 1: unresolved alerts are loaded page by page: an old open critical alert behind 1,200 others is shown', async () => {
  const [P1, P2] = ['p-1101', 'p-1102'];
  const old = await vigil.raiseAlert({ patient_id: P2, severity: 'critical', title: 'Asystole, still open' });
  await raiseMany(vigil, 1200, (i) => ({ patient_id: P1, severity: 'low', title: `Routine ${i}` }));
  await vigil.assignCareTeam(P1, 'jan');
  await vigil.assignCareTeam(P2, 'jan');

  const legacy = await newPage(browser);
  const queries = [];
  legacy.on('request', (r) => { if (r.url().includes('/api/v1/alerts?')) queries.push(new URL(r.url()).searchParams); });
  await connectLegacy(legacy, vigil, await vigil.token('jan', 'nurse'));
  await legacy.waitForSelector(`${rowSel(old.id)}[data-status="open"]`, { timeout: 20000 });
  await legacy.waitForFunction(() => document.getElementById('open-count').textContent === '1201', null, { timeout: 20000 });
  assert.equal(await legacy.locator('li.alert-row').count(), 1201);

  // Three pages of open alerts: after=0, then the largest last_seq of each full page.
  const open = queries.filter((q) => q.get('status') === 'open');
  assert.deepEqual(open.map((q) => q.get('limit')), ['500', '500', '500']);
  assert.equal(open[0].get('after'), '0');
  assert.ok(Number(open[1].get('after')) > 0 && Number(open[2].get('after')) > Number(open[1].get('after')));
  assert.deepEqual(legacy.problems, []);
});

// ---- 2 and 3. The catch-up after a reconnect -----------------------------------------------

test('audit 2: after a reconnect more than 500 missed changes are all fetched, page by page', async () => {
  const P = 'p-1201';
  await vigil.assignCareTeam(P, 'kim');
  const legacy = await newPage(browser);
  const socket = await cuttableSocket(legacy);
  const catchUps = [];
  legacy.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname === '/api/v1/alerts' && u.searchParams.has('after') && !u.searchParams.has('status')) catchUps.push(u.searchParams);
  });
  await connectLegacy(legacy, vigil, await vigil.token('kim', 'nurse'));
  const seen = await vigil.raiseAlert({ patient_id: P, severity: 'high', title: 'Seen live' });
  await legacy.waitForSelector(rowSel(seen.id));

  socket.cut();
  await legacy.waitForSelector('#connection-status[data-state="offline"]');
  const missed = await raiseMany(vigil, 700, (i) => ({ patient_id: P, severity: 'low', title: `Missed ${i}` }));
  socket.restore();
  await legacy.waitForSelector('#connection-status[data-state="live"]', { timeout: 30000 });
  // A live alert right after the reconnect must not make the page skip what it still has to fetch.
  const live = await vigil.raiseAlert({ patient_id: P, severity: 'medium', title: 'Live after the reconnect' });
  await legacy.waitForSelector(rowSel(live.id));
  await legacy.waitForFunction((n) => document.querySelectorAll('li.alert-row').length === n, 702, { timeout: 20000 });
  for (const a of [missed[0], missed[499], missed[500], missed[699]]) assert.equal(await rowCount(legacy, a.id), 1);

  assert.ok(catchUps.length >= 2, `the catch-up asked for more than one page: ${catchUps.map(String)}`);
  assert.equal(catchUps[0].get('limit'), '500');
  assert.ok(Number(catchUps[0].get('after')) >= seen.seq);
  const byChange = missed.map((m) => m.last_seq).sort((x, y) => x - y);
  assert.equal(Number(catchUps[1].get('after')), byChange[499], 'page 2 starts after the last change of page 1');
  assert.deepEqual(legacy.problems, []);
});

test('audit 2: a live frame during a catch-up does not move the resume point past changes not yet fetched', async () => {
  const P = 'p-1202';
  await vigil.assignCareTeam(P, 'kit');
  const legacy = await newPage(browser);
  const socket = await cuttableSocket(legacy);
  await connectLegacy(legacy, vigil, await vigil.token('kit', 'nurse'));
  socket.cut();
  await legacy.waitForSelector('#connection-status[data-state="offline"]');
  await raiseMany(vigil, 700, (i) => ({ patient_id: P, severity: 'low', title: `Missed ${i}` }));

  // The catch-up's second page fails, and only after a live alert has reached the page:
  // what is still to fetch must be asked for again from the end of page 1, not from the
  // live frame's id.
  let live;
  let pages = 0;
  await legacy.route((u) => u.pathname === '/api/v1/alerts' && u.searchParams.has('after') && !u.searchParams.has('status'),
    async (route) => {
      pages += 1;
      if (pages !== 2) { await route.continue(); return; }
      live = await vigil.raiseAlert({ patient_id: P, severity: 'high', title: 'Live during the catch-up' });
      await legacy.waitForSelector(rowSel(live.id));
      await route.abort('connectionreset');
    });
  socket.restore();
  await legacy.waitForSelector('#connection-status[data-state="live"]', { timeout: 30000 });
  await legacy.waitForFunction((n) => document.querySelectorAll('li.alert-row').length === n, 701, { timeout: 20000 });
  assert.ok(pages >= 3, `page 2 was asked for again (${pages} catch-up requests)`);
  assert.deepEqual(legacy.problems, []);
});

test('audit 3: the catch-up after a reconnect leaves out the patients the subscription leaves out', async () => {
  const [PA, PB] = ['p-1301', 'p-1302'];
  await vigil.assignCareTeam(PA, 'lee');
  await vigil.assignCareTeam(PB, 'lee');
  const legacy = await newPage(browser);
  const socket = await cuttableSocket(legacy);
  await connectLegacy(legacy, vigil, await vigil.token('lee', 'nurse'));
  await legacy.fill('#patient-ids', PA);
  await legacy.click('#subscribe');
  await legacy.waitForFunction((p) => document.getElementById('subscribed-to').textContent === `Subscribed to: ${p}`, PA);

  socket.cut();
  await legacy.waitForSelector('#connection-status[data-state="offline"]');
  const a = await vigil.raiseAlert({ patient_id: PA, severity: 'high', title: 'For the subscribed patient' });
  const b = await vigil.raiseAlert({ patient_id: PB, severity: 'critical', title: 'For the other patient' });

  // The catch-up is answered only once the page has sent its subscription again and had it
  // confirmed, so its rows cannot be dropped by the `subscribed` frame coming later.
  let resubscribed;
  const confirmed = new Promise((resolve) => { resubscribed = resolve; });
  socket.onServerFrame((m) => { if (JSON.parse(m).type === 'subscribed') resubscribed(); });
  await legacy.route((u) => u.pathname === '/api/v1/alerts' && u.searchParams.has('after') && !u.searchParams.has('status'),
    async (route) => { await confirmed; await route.continue(); });
  socket.restore();
  await legacy.waitForSelector('#connection-status[data-state="live"]', { timeout: 30000 });
  await legacy.waitForSelector(`${rowSel(a.id)}[data-status="open"]`, { timeout: 10000 });
  // Both came in the same answer: had b been applied, its row would be there by now.
  assert.equal(await rowCount(legacy, b.id), 0, 'a row of a patient the subscription leaves out');
  assert.deepEqual(legacy.problems, []);
});

// ---- 4. Retrying only when it can help -------------------------------------------------------

test('audit 4c: a server restart is "Could not connect; retrying", not "bad token", and the page comes back', async () => {
  await vigil.assignCareTeam('p-1401', 'mia');
  const legacy = await newPage(browser);
  await connectLegacy(legacy, vigil, await vigil.token('mia', 'nurse'));
  await vigil.stop();
  try {
    await legacy.waitForFunction(() => /^Could not connect; retrying in \d+ s/.test(document.getElementById('notice').textContent),
      null, { timeout: 15000 });
    assert.doesNotMatch(await legacy.textContent('#notice'), /token/i);
    await screenshot(legacy, 'audit-4c-legacy-restart');
  } finally {
    await vigil.restart();
  }
  await legacy.waitForSelector('#connection-status[data-state="live"]', { timeout: 30000 });
  const a = await vigil.raiseAlert({ patient_id: 'p-1401', severity: 'high', title: 'After the restart' });
  await legacy.waitForSelector(rowSel(a.id));
  assert.deepEqual(legacy.problems, []);
});

test('audit 4a: a token that expired while the page was disconnected stops the retries and says so', async () => {
  const v = await Vigil.start('legacy-expired-offline');
  try {
    await v.assignCareTeam('p-1402', 'ned');
    const token = await v.token('ned', 'nurse', { ttl: '8' });
    const exp = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).exp * 1000;
    const legacy = await newPage(browser);
    await legacy.clock.install();   // time flows as usual; fastForward below looks ahead
    let sockets = 0;
    legacy.on('websocket', () => { sockets += 1; });
    await connectLegacy(legacy, v, token);
    await v.stop();
    await legacy.waitForFunction(() => /^Could not connect; retrying/.test(document.getElementById('notice').textContent),
      null, { timeout: 10000 });
    // The token expires while the server is away (the wait is for the clock, not an event).
    await waitUntil(() => Date.now() > exp + 200, { timeout: 15000, message: 'the token to expire' });
    await v.restart();
    await legacy.waitForFunction(() => /token expired/.test(document.getElementById('notice').textContent),
      null, { timeout: 30000 });
    assert.match(await legacy.textContent('#notice'), /Paste a new token/);
    assert.equal(await legacy.getAttribute('#connection-status', 'data-state'), 'offline');
    await screenshot(legacy, 'audit-4a-legacy-token-expired');
    // No retry is left: two minutes ahead on the page's clock, no socket is opened.
    const before = sockets;
    await legacy.clock.fastForward('02:00');
    await legacy.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
    assert.equal(sockets, before, 'the page tried again with the expired token');
    assert.match(await legacy.textContent('#notice'), /token expired/);
    assert.deepEqual(legacy.problems, []);
  } finally {
    await v.dispose();
  }
});

test('audit 4b: VIGIL_WS_MODE=off (410 on /ws) stops the retries and points to the console', async () => {
  const v = await Vigil.start('legacy-ws-off', { VIGIL_WS_MODE: 'off' });
  try {
    const legacy = await newPage(browser);
    await legacy.goto(`${v.baseUrl}/legacy`);
    await legacy.fill('#token-input', await v.token('olga', 'nurse'));
    await legacy.click('#sign-in');
    await legacy.waitForFunction(() => /switched off/.test(document.getElementById('notice').textContent), null, { timeout: 10000 });
    const link = legacy.locator('#notice a');
    assert.equal(await link.getAttribute('href'), '/');
    assert.match(await link.textContent(), /new alert console/);
    assert.doesNotMatch(await legacy.textContent('#notice'), /retrying|token/i);
    assert.equal(await legacy.getAttribute('#connection-status', 'data-state'), 'offline');
    await screenshot(legacy, 'audit-4b-legacy-ws-off');
    assert.deepEqual(legacy.problems, []);
  } finally {
    await v.dispose();
  }
});

// ---- 5. Accessibility -------------------------------------------------------------------------

test('audit 5: rows are named for screen readers, titles are headings, and a burst of critical alerts is one announcement', async () => {
  const P = 'p-1501';
  await vigil.assignCareTeam(P, 'pia');
  const legacy = await newPage(browser);
  await connectLegacy(legacy, vigil, await vigil.token('pia', 'nurse'));
  await legacy.evaluate(() => {
    window.__announced = [];
    const region = document.querySelector('[aria-live="assertive"]');
    new MutationObserver(() => { if (region.textContent) window.__announced.push(region.textContent); })
      .observe(region, { childList: true, characterData: true, subtree: true });
  });
  const titles = ['VF arrest bed 1', 'VF arrest bed 2', 'VF arrest bed 3'];
  const raised = await Promise.all(titles.map((title) => vigil.raiseAlert({ patient_id: P, severity: 'critical', title })));
  for (const a of raised) await legacy.waitForSelector(rowSel(a.id));
  await legacy.waitForFunction(() => window.__announced.length > 0);

  for (const title of titles) {
    const what = `${title} (patient ${P})`;
    await legacy.getByRole('heading', { level: 3, name: title }).waitFor();
    for (const verb of ['Acknowledge', 'Escalate', 'Resolve']) {
      assert.equal(await legacy.getByRole('button', { name: `${verb}: ${what}`, exact: true }).count(), 1, `${verb} button of ${title}`);
    }
    assert.equal(await legacy.getByRole('textbox', { name: `Note (optional) for: ${what}`, exact: true }).count(), 1);
  }
  const announced = await legacy.evaluate(() => window.__announced);
  assert.equal(announced.length, 1, `one announcement for the burst: ${JSON.stringify(announced)}`);
  assert.match(announced[0], /^3 critical alerts: /);
  for (const title of titles) assert.ok(announced[0].includes(`${title} (patient ${P})`), announced[0]);
  assert.deepEqual(legacy.problems, []);
});

// ---- 6. A refused subscribe ------------------------------------------------------------------

test('audit 6: a subscribe refused as forbidden says why next to the subscribe form', async () => {
  await vigil.assignCareTeam('p-1601', 'quin');
  const legacy = await newPage(browser);
  await connectLegacy(legacy, vigil, await vigil.token('quin', 'nurse'));
  await legacy.fill('#patient-ids', 'p-1601 p-not-mine');
  await legacy.click('#subscribe');
  const reason = legacy.locator('fieldset:has(#subscribe-form) [role="alert"]');
  await reason.filter({ hasText: /forbidden/ }).waitFor({ timeout: 5000 });
  assert.match(await reason.textContent(), /Subscription refused: .*\(forbidden\)/);
  assert.equal(await legacy.getAttribute('#patient-ids', 'aria-invalid'), 'true');
  await screenshot(legacy, 'audit-6-legacy-subscribe-refused');
  // A subscribe that works clears it.
  await legacy.fill('#patient-ids', 'p-1601');
  await legacy.click('#subscribe');
  await legacy.waitForFunction(() => document.getElementById('subscribed-to').textContent === 'Subscribed to: p-1601');
  assert.equal(await reason.textContent(), '');
  assert.deepEqual(legacy.problems, []);
});

// ---- 7. Bidirectional controls ---------------------------------------------------------------

test('audit 7: bidirectional controls are made visible in the aria-labels, and refused in user ids', async () => {
  // A user id holding one cannot reach the page at all now: the server refuses it on a
  // care team (422) and in a token (401), as it looked like another user's.
  await assert.rejects(vigil.assignCareTeam('p-1701', 'rex\u202Eadmin'), /HTTP 422/);
  const user = 'rex';
  await vigil.assignCareTeam('p-1701', user);
  const legacy = await newPage(browser);
  await connectLegacy(legacy, vigil, await vigil.token(user, 'nurse'));
  const who = await legacy.textContent('#who');
  assert.ok(who.includes('rex'), JSON.stringify(who));
  const a = await vigil.raiseAlert({ patient_id: 'p-1701', severity: 'high', title: 'HR \u202E148' });
  await legacy.waitForSelector(rowSel(a.id));
  // The data box's label ("Alert data") carries no producer text; the four that do are checked.
  const labels = (await legacy.locator(`${rowSel(a.id)} [aria-label]`).evaluateAll((els) => els.map((e) => e.getAttribute('aria-label'))))
    .filter((l) => l !== 'Alert data');
  assert.equal(labels.length, 4, JSON.stringify(labels));
  for (const l of labels) assert.ok(!BIDI.test(l) && l.includes('HR \uFFFD148'), JSON.stringify(l));
  assert.deepEqual(legacy.problems, []);
});

// ---- 8. Mobile --------------------------------------------------------------------------------

test('audit 8: at 360 px a long data value in the opened details scrolls inside its row; the buttons stay on screen', async () => {
  await vigil.assignCareTeam('p-1801', 'sam');
  const a = await vigil.raiseAlert({
    patient_id: 'p-1801', severity: 'high', title: 'ECG trace attached', data: { trace: 'QRS'.repeat(800), lead: 'II' },
  });
  const legacy = await newPage(browser);
  await legacy.setViewportSize({ width: 360, height: 800 });
  await connectLegacy(legacy, vigil, await vigil.token('sam', 'nurse'));
  const row = legacy.locator(rowSel(a.id));
  await row.locator('details summary').click();
  await row.locator('details pre').waitFor();
  assert.match(await row.locator('details pre').textContent(), /"lead": "II"/);
  await screenshot(legacy, 'audit-8-legacy-mobile-details');
  assert.ok(await legacy.evaluate(() => document.documentElement.scrollWidth) <= 360, 'the page scrolls sideways');
  for (const b of await row.locator('button').all()) {
    const box = await b.boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= 360, `a button reaches x=${box.x + box.width}`);
  }
  const pre = await row.locator('details pre').evaluate((p) => ({ client: p.clientWidth, scroll: p.scrollWidth }));
  assert.ok(pre.scroll > pre.client, 'the data scrolls inside its box');
  assert.deepEqual(legacy.problems, []);
});

// ---- 9 and 10. Cosmetics -------------------------------------------------------------------

test('audit 9: no blank line before "Acknowledged by" when there is no message', async () => {
  await vigil.assignCareTeam('p-1901', 'tia');
  const legacy = await newPage(browser);
  await connectLegacy(legacy, vigil, await vigil.token('tia', 'nurse'));
  const a = await vigil.raiseAlert({ patient_id: 'p-1901', severity: 'high', title: 'No message', message: '' });
  await legacy.locator(`${rowSel(a.id)} button[data-action="acknowledged"]`).click();
  await legacy.waitForSelector(`${rowSel(a.id)}[data-status="acknowledged"]`);
  assert.equal(await legacy.textContent(`${rowSel(a.id)} .message`), 'Acknowledged by tia (nurse)');
  assert.deepEqual(legacy.problems, []);
});

test('audit 9: the deprecation banner names the new console at / (a link), not the API path', async () => {
  const v = await Vigil.start('legacy-ws-deprecated', { VIGIL_WS_MODE: 'deprecated' });
  try {
    const legacy = await newPage(browser);
    await connectLegacy(legacy, v, await v.token('uma', 'nurse'));
    await legacy.waitForSelector('#deprecation-banner', { state: 'visible' });
    const text = await legacy.textContent('#deprecation-banner');
    assert.doesNotMatch(text, /\/api\/v1/);
    assert.match(text, /replacement is the new alert console/);
    assert.equal(await legacy.locator('#deprecation-banner a').evaluate((a) => a.href), `${v.baseUrl}/`);
    await screenshot(legacy, 'audit-9-legacy-deprecation-banner');
    assert.deepEqual(legacy.problems, []);
  } finally {
    await v.dispose();
  }
});

test('audit 10: the medium-severity strip has at least 3:1 contrast against white', async () => {
  await vigil.assignCareTeam('p-1001', 'val');
  const legacy = await newPage(browser);
  await connectLegacy(legacy, vigil, await vigil.token('val', 'nurse'));
  const a = await vigil.raiseAlert({ patient_id: 'p-1001', severity: 'medium', title: 'SpO2 92' });
  const strip = await legacy.locator(rowSel(a.id)).evaluate((li) => getComputedStyle(li).borderLeftColor);
  const ratio = contrast(strip, 'rgb(255, 255, 255)');
  assert.ok(ratio >= 3, `medium strip ${strip}: ${ratio.toFixed(2)}:1`);
  assert.deepEqual(legacy.problems, []);
});

/**
 * The note field stays editable while an in-socket ack waits for its `ack_result`, and a nurse
 * goes on writing. The answer used to clear the field: what she typed meanwhile was gone,
 * never sent. Only the text that was sent is taken out now (as on the console).
 */
test('a note typed while the in-socket ack waits for its answer is kept; one left alone is cleared', async () => {
  await vigil.assignCareTeam('p-1101', 'wes');
  const x = await vigil.raiseAlert({ patient_id: 'p-1101', severity: 'high', title: 'BP 190/120' });
  const y = await vigil.raiseAlert({ patient_id: 'p-1101', severity: 'high', title: 'RR 30' });
  const legacy = await newPage(browser);
  // The first ack_result is held on its way to the page until the nurse has typed more.
  let holding = true;
  let release;
  const gate = new Promise((r) => { release = r; });
  let arrived;
  const held = new Promise((r) => { arrived = r; });
  await legacy.routeWebSocket(/\/ws(\?|$)/, (ws) => {
    const server = ws.connectToServer();
    server.onMessage(async (m) => {
      if (holding && String(m).includes('"ack_result"')) {
        holding = false;
        arrived();
        await gate;
      }
      ws.send(m);
    });
    ws.onMessage((m) => server.send(m));
    server.onClose((code, reason) => ws.close({ code, reason }));
    ws.onClose((code, reason) => server.close({ code, reason }));
  });
  await connectLegacy(legacy, vigil, await vigil.token('wes', 'nurse'));
  await legacy.waitForSelector(`${rowSel(y.id)}[data-status="open"]`, { timeout: 5000 });

  const row = legacy.locator(rowSel(x.id));
  const note = row.locator('.note-input');
  await note.fill('checking');
  await row.locator('button[data-action="acknowledged"]').click();
  await held;
  await note.focus();
  await legacy.keyboard.press('End');
  await legacy.keyboard.type(' then calling Dr Levi');
  assert.equal(await note.inputValue(), 'checking then calling Dr Levi');
  release();
  await legacy.waitForSelector(`${rowSel(x.id)}[data-status="acknowledged"]`, { timeout: 5000 });
  await waitUntil(() => row.locator('button[data-action="escalated"]').isEnabled(),
    { timeout: 5000, message: 'the row usable again once ack_result is in' });

  const stored = await vigil.getAlert(await vigil.token('harness-admin', 'admin'), x.id);
  assert.deepEqual(stored.acknowledgments.map((k) => [k.status, k.note]), [['acknowledged', 'checking']]);
  assert.equal(await note.inputValue(), 'then calling Dr Levi', 'the text typed while the ack was on its way is kept');

  // A note left alone while it is sent is cleared, as before.
  const other = legacy.locator(rowSel(y.id));
  await other.locator('.note-input').fill('on my way');
  await other.locator('button[data-action="acknowledged"]').click();
  await legacy.waitForSelector(`${rowSel(y.id)}[data-status="acknowledged"]`, { timeout: 5000 });
  await waitUntil(async () => (await other.locator('.note-input').inputValue()) === '',
    { timeout: 5000, message: 'the note sent is cleared' });
  assert.deepEqual(legacy.problems, []);
});
