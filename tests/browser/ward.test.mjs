// The two pages as a shared ward workstation uses them: several tabs of one browser, the offline note, announcements
// after a resume, rows pushed down under the pointer, pasted tokens, 360 px layout.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Vigil, launchBrowser, newPage, signInConsole, connectLegacy, screenshot, rowSel, rowCount, waitUntil,
} from './harness.mjs';

let vigil;
let browser;

before(async () => {
  vigil = await Vigil.start('ward');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await vigil?.dispose();
});

/** Two tabs of one browser (shared cookies and localStorage), with problems collected. */
async function twoTabs() {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const tabs = [await context.newPage(), await context.newPage()];
  for (const t of tabs) {
    t.problems = [];
    t.on('pageerror', (e) => t.problems.push(`pageerror: ${e.message}`));
    t.setDefaultTimeout(10000);
  }
  return { context, tabs };
}

/** Opens the console in a tab of a browser already signed in (the cookie skips the form). */
async function openSignedIn(page) {
  await page.goto(`${vigil.baseUrl}/`);
  await page.waitForSelector('#connection-status[data-state="live"]', { timeout: 10000 });
}

/** Collects every text the assertive live region is given. */
async function recordSpoken(page) {
  await page.evaluate(() => {
    window.__spoken = [];
    new MutationObserver(() => {
      const t = document.getElementById('announcer').textContent;
      if (t) window.__spoken.push(t);
    }).observe(document.getElementById('announcer'), { childList: true, characterData: true, subtree: true });
  });
}

// ---- 1. Several tabs, one cookie ------------------------------------------------------------

test('signing out in one tab ends the session in the other tabs at once', async () => {
  await vigil.assignCareTeam('p-d1', 'alice');
  const a = await vigil.raiseAlert({ patient_id: 'p-d1', severity: 'high', title: 'Shown to alice' });
  await vigil.assignCareTeam('p-d1', 'abe');     // a witness on another PC
  const admin = await vigil.token('harness-admin', 'admin');
  const { context, tabs: [tabA, tabB] } = await twoTabs();
  const witness = await newPage(browser);
  try {
    // The page's clock (time flows as usual) lets the check below look ahead past any retry.
    await context.clock.install();
    await signInConsole(tabA, vigil, await vigil.token('alice', 'nurse'));
    await openSignedIn(tabB);
    await tabB.waitForSelector(rowSel(a.id));
    await tabA.click('#sign-out');
    await tabB.waitForSelector('#signin-view', { state: 'visible', timeout: 3000 });
    assert.match(await tabB.textContent('#signin-message'), /signed out in another tab/);
    assert.equal(await tabB.locator('li.alert-row').count(), 0, 'the old list is gone');
    assert.equal(await tabB.textContent('#who'), '');
    assert.equal(await tabB.isVisible('#connection-status'), false);
    // And it stays gone. The server has let go of both tabs' streams (nothing else is open yet) …
    await waitUntil(async () => {
      const r = await vigil.api('GET', '/api/v1/alerts/stream/stats', { token: admin });
      return r.status === 200 && r.body.connections.sse === 0 && r.body.connections.ws === 0;
    }, { timeout: 10000, message: 'the server to close the signed-out tabs\' streams' });
    const asked = [];
    tabB.on('request', (r) => { if (r.url().includes('/api/')) asked.push(`${r.method()} ${r.url()}`); });
    // … an alert raised now reaches a console still signed in elsewhere …
    await signInConsole(witness, vigil, await vigil.token('abe', 'nurse'));
    const later = await vigil.raiseAlert({ patient_id: 'p-d1', severity: 'critical', title: 'Raised after the sign-out' });
    await witness.waitForSelector(rowSel(later.id));
    // … but not the signed-out tab, not even after any retry or poll it might still have
    // scheduled (two minutes ahead on its clock).
    await context.clock.fastForward('02:00');
    await tabB.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
    assert.deepEqual(asked, [], 'the signed-out tab asked the API again');
    assert.equal(await rowCount(tabB, later.id), 0);
    assert.ok(await tabB.isVisible('#signin-view'));
    await screenshot(tabB, 'ward-other-tab-signed-out');
    assert.deepEqual([...tabA.problems, ...tabB.problems, ...witness.problems], []);
  } finally {
    await context.close();
    await witness.context().close();
  }
});

test('another user signing in in one tab ends the previous user\'s session in the others', async () => {
  await vigil.assignCareTeam('p-d1b', 'alice');   // alice's patient, not bob's
  const a = await vigil.raiseAlert({ patient_id: 'p-d1b', severity: 'high', title: 'Alice\'s patient only' });
  const { context, tabs: [tabA, tabB] } = await twoTabs();
  try {
    await signInConsole(tabA, vigil, await vigil.token('alice', 'nurse'));
    await openSignedIn(tabB);
    await tabB.waitForSelector(rowSel(a.id));
    // Tab A follows a one-click link for bob: the browser's cookie is bob's from now on.
    const bob = await vigil.token('bob', 'nurse');
    await tabA.evaluate((t) => { location.hash = `#token=${t}`; }, bob);
    // The link names another user than alice: the page asks first (outside-audit.test.mjs).
    await tabA.click('#link-switch');
    await tabA.waitForFunction(() => document.getElementById('who').textContent.startsWith('bob'));
    await tabB.waitForSelector('#signin-view', { state: 'visible', timeout: 3000 });
    assert.match(await tabB.textContent('#signin-message'), /bob signed in in another tab.*alice's session ended here/);
    assert.equal(await rowCount(tabB, a.id), 0, 'bob\'s cookie, alice\'s patient: not shown');
    // Tab A is untouched: still bob's.
    await tabA.waitForSelector('#connection-status[data-state="live"]');
    assert.match(await tabA.textContent('#who'), /^bob \(nurse\)/);
    assert.deepEqual([...tabA.problems, ...tabB.problems], []);
  } finally {
    await context.close();
  }
});

test('no action goes out when the signed-in user shown is not the one the server would record', async () => {
  await vigil.assignCareTeam('p-d1c', 'alice');
  const a = await vigil.raiseAlert({ patient_id: 'p-d1c', severity: 'high', title: 'Not to be acknowledged as someone else' });
  const page = await newPage(browser);
  await signInConsole(page, vigil, await vigil.token('alice', 'nurse'));
  await page.waitForSelector(rowSel(a.id));
  // The session another tab recorded (a storage event can be missed: a frozen background tab).
  await page.evaluate(() => localStorage.setItem('vigil.session', JSON.stringify({ user_id: 'bob', role: 'nurse' })));
  await page.locator(`${rowSel(a.id)} button[data-action="acknowledged"]`).click();
  await page.waitForSelector('#signin-view', { state: 'visible', timeout: 3000 });
  assert.match(await page.textContent('#signin-message'), /bob signed in in another tab.*nothing was sent/);
  const stored = await vigil.getAlert(await vigil.token('harness-admin', 'admin'), a.id);
  assert.equal(stored.status, 'open');
  assert.deepEqual(stored.acknowledgments, []);
  assert.deepEqual(page.problems, []);
});

// ---- 3. Announcements after a resume ----------------------------------------------------------

test('after an outage, a critical alert handled meanwhile is not announced; one still open is', async () => {
  await vigil.assignCareTeam('p-d3', 'carl');
  const page = await newPage(browser);
  await page.clock.install();   // time flows as usual; runFor below fires what is gathered
  const streams = [];
  page.on('request', (r) => { if (r.url().includes('/api/v1/alerts/stream')) streams.push(r.url()); });
  await signInConsole(page, vigil, await vigil.token('carl', 'nurse'));
  await recordSpoken(page);
  // The reconnect is held back (not refused) until the alerts below are in the log: the
  // stream then resumes and replays `alert` (open) followed by `alert_updated` (acknowledged).
  let release;
  const gate = new Promise((r) => { release = r; });
  await page.route('**/api/v1/alerts/stream**', async (route) => { await gate; await route.continue(); });
  const before = streams.length;
  await vigil.restart();
  await waitUntil(() => streams.length > before, { timeout: 10000, message: 'the page to try the stream again' });
  const handled = await vigil.raiseAlert({ patient_id: 'p-d3', severity: 'critical', title: 'Handled by someone else meanwhile' });
  const admin = await vigil.token('harness-admin', 'admin');
  const r = await vigil.api('POST', `/api/v1/alerts/${handled.id}/acknowledge`, { token: admin, body: { status: 'acknowledged', note: 'on it' } });
  assert.equal(r.status, 200);
  const open = await vigil.raiseAlert({ patient_id: 'p-d3', severity: 'critical', title: 'Raised meanwhile and still open' });
  release();

  await page.waitForSelector('#connection-status[data-state="live"]', { timeout: 15000 });
  await page.waitForSelector(`${rowSel(handled.id)}[data-status="acknowledged"]`);
  await page.waitForSelector(`${rowSel(open.id)}[data-status="open"]`);
  await waitUntil(async () => (await page.evaluate(() => window.__spoken)).join(' ').includes('still open'),
    { timeout: 5000, message: 'the alert still open to be announced' });
  // Anything still being gathered for the announcer (400 ms, then 50 ms) is spoken now.
  await page.clock.runFor(1000);
  const spoken = (await page.evaluate(() => window.__spoken)).join(' | ');
  assert.doesNotMatch(spoken, /Handled by someone else/, `announced: ${spoken}`);
  const toasts = await page.locator('#toasts .toast p').allTextContents();
  assert.ok(toasts.some((t) => t.includes('still open')), JSON.stringify(toasts));
  assert.ok(!toasts.some((t) => t.includes('Handled by someone else')), `toasts: ${JSON.stringify(toasts)}`);
  // Audit D7: the toast's button names the alert it dismisses.
  const label = await page.locator('#toasts .toast', { hasText: 'still open' }).locator('button').getAttribute('aria-label');
  assert.equal(label, 'Dismiss: Raised meanwhile and still open (patient p-d3)');
  await screenshot(page, 'ward-resume-announcements');
  assert.deepEqual(page.problems, []);
});

// ---- 4. A row pushed down under the pointer -------------------------------------------------

test('a click aimed at a row that a new alert just pushed down does not act on the new alert', async () => {
  await vigil.assignCareTeam('p-d4', 'dina');
  const x = await vigil.raiseAlert({ patient_id: 'p-d4', severity: 'high', title: 'Row aimed at', message: 'same shape' });
  const page = await newPage(browser);
  const acks = [];   // every action the page sends, in order
  page.on('request', (r) => { if (r.method() === 'POST' && /\/acknowledge$/.test(new URL(r.url()).pathname)) acks.push(r.url()); });
  await signInConsole(page, vigil, await vigil.token('dina', 'nurse'));
  const box = await page.locator(`${rowSel(x.id)} button[data-action="acknowledged"]`).boundingBox();
  const point = { x: box.x + box.width / 2, y: box.y + box.height / 2 };
  const n = await vigil.raiseAlert({ patient_id: 'p-d4', severity: 'critical', title: 'New, unread one', message: 'same shape' });
  await page.waitForSelector(rowSel(n.id), { state: 'attached' });
  // The new row now sits where the aimed-at row was (the shift this is about) …
  const under = await page.evaluate(({ x: px, y: py }) => document.elementFromPoint(px, py)?.closest('li.alert-row')?.dataset.alertId, point);
  assert.equal(under, n.id, 'the new row is under the pointer');
  // … and the click that was on its way lands there.
  await page.mouse.click(point.x, point.y);
  // Once it has been on screen a moment (the page marks the row `fresh` meanwhile), its
  // buttons work as usual. A request from the first click would have been sent from its
  // click handler, so it is seen before the row's mark is.
  await page.waitForSelector(`${rowSel(n.id)}:not(.fresh)`);
  assert.deepEqual(acks, [], 'a click aimed elsewhere sent an action');
  const answered = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith(`/alerts/${n.id}/acknowledge`));
  await page.mouse.click(point.x, point.y);
  assert.equal((await answered).status(), 200);
  await page.waitForSelector(`${rowSel(n.id)}[data-status="acknowledged"]`, { timeout: 5000 });
  assert.deepEqual(acks.map((u) => new URL(u).pathname), [`/api/v1/alerts/${n.id}/acknowledge`], 'exactly one action, on the row under the pointer');
  const admin = await vigil.token('harness-admin', 'admin');
  assert.equal((await vigil.getAlert(admin, n.id)).acknowledgments.length, 1);
  const aimed = await vigil.getAlert(admin, x.id);
  assert.equal(aimed.status, 'open');
  assert.deepEqual(aimed.acknowledgments, []);
  assert.deepEqual(page.problems, []);
});

// ---- 5. Pasted tokens ------------------------------------------------------------------------

test('a token pasted with line breaks signs in; something that is not a token says so', async () => {
  await vigil.assignCareTeam('p-d5', 'erik');
  const token = await vigil.token('erik', 'nurse');
  const wrapped = `  ${token.slice(0, 50)}\n${token.slice(50, 100)} \r\n ${token.slice(100)}\n`;
  const page = await newPage(browser);
  await signInConsole(page, vigil, wrapped);
  assert.match(await page.textContent('#who'), /^erik \(nurse\)/);

  const other = await newPage(browser);
  await other.goto(`${vigil.baseUrl}/`);
  await other.fill('#token-input', 'hello');
  await other.click('#sign-in');
  await other.waitForFunction(() => /not a valid token/.test(document.getElementById('signin-message').textContent));
  assert.doesNotMatch(await other.textContent('#signin-message'), /reach the server/);

  const legacy = await newPage(browser);
  await connectLegacy(legacy, vigil, wrapped);
  assert.match(await legacy.textContent('#who'), /^erik \(nurse\)/);
  const garbage = await newPage(browser);
  await garbage.goto(`${vigil.baseUrl}/legacy`);
  await garbage.fill('#token-input', 'hello');
  await garbage.click('#sign-in');
  await garbage.waitForFunction(() => /not a valid token/.test(document.getElementById('notice').textContent));
  assert.equal(await garbage.isEnabled('#disconnect'), false);
  // Shaped like a token but unreadable: refused, not "expired" (its exp cannot be read).
  const shaped = await newPage(browser);
  await shaped.goto(`${vigil.baseUrl}/legacy`);
  await shaped.fill('#token-input', 'abc.def.ghi');
  await shaped.click('#sign-in');
  await shaped.waitForFunction(() => /was refused/.test(document.getElementById('notice').textContent), null, { timeout: 20000 });
  assert.doesNotMatch(await shaped.textContent('#notice'), /expired/);
  assert.deepEqual([...page.problems, ...other.problems, ...legacy.problems, ...garbage.problems, ...shaped.problems], []);
});

test('the legacy page says when the token\'s role may not use it, instead of retrying', async () => {
  const legacy = await newPage(browser);
  await legacy.clock.install();   // time flows as usual; fastForward below looks ahead
  let sockets = 0;
  legacy.on('websocket', () => { sockets += 1; });
  await legacy.goto(`${vigil.baseUrl}/legacy`);
  await legacy.fill('#token-input', await vigil.token('lab-feed', 'service'));
  await legacy.click('#sign-in');
  await legacy.waitForFunction(() => /may not use the dashboard/.test(document.getElementById('notice').textContent), null, { timeout: 10000 });
  assert.match(await legacy.textContent('#notice'), /role service may not read alerts/);
  assert.doesNotMatch(await legacy.textContent('#notice'), /retrying|expired/i);
  // No retry is left: two minutes ahead on the page's clock (past any backoff), no socket is opened.
  await legacy.clock.fastForward('02:00');
  await legacy.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
  assert.equal(sockets, 1, 'no second attempt');
  assert.equal(await legacy.getAttribute('#connection-status', 'data-state'), 'offline');
  await screenshot(legacy, 'ward-legacy-service-token');
  assert.deepEqual(legacy.problems, []);
});

test('the legacy page names the per-user stream limit instead of retrying', async () => {
  const limited = await Vigil.start('ward-limit', { VIGIL_MAX_STREAMS_PER_USER: '1' });
  try {
    await limited.assignCareTeam('p-d7', 'fay');
    const token = await limited.token('fay', 'nurse');
    const first = await newPage(browser);
    await connectLegacy(first, limited, token);
    const second = await newPage(browser);
    await second.goto(`${limited.baseUrl}/legacy`);
    await second.fill('#token-input', token);
    await second.click('#sign-in');
    await second.waitForFunction(() => /Too many live connections/.test(document.getElementById('notice').textContent), null, { timeout: 10000 });
    assert.match(await second.textContent('#notice'), /open streams per user/);
    assert.equal(await first.getAttribute('#connection-status', 'data-state'), 'live');
  } finally {
    await limited.dispose();
  }
});

// ---- 6. 360 px --------------------------------------------------------------------------------

test('at 360 px a 64-character patient id and an unbroken note stay inside the page', async () => {
  const P = `LONGPATIENT${'x'.repeat(53)}`;
  assert.equal(P.length, 64);
  await vigil.assignCareTeam(P, 'gus');
  const a = await vigil.raiseAlert({ patient_id: P, severity: 'high', title: 'Long id' });
  const admin = await vigil.token('harness-admin', 'admin');
  const r = await vigil.api('POST', `/api/v1/alerts/${a.id}/acknowledge`, { token: admin, body: { status: 'acknowledged', note: 'n'.repeat(1500) } });
  assert.equal(r.status, 200);
  const token = await vigil.token('gus', 'nurse');
  const context = await browser.newContext({ viewport: { width: 360, height: 740 } });
  try {
    const page = await context.newPage();
    await signInConsole(page, vigil, token);
    await page.locator(`${rowSel(a.id)} details.trail summary`).click();
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    await screenshot(page, 'ward-console-360');
    assert.ok(width <= 360, `console page is ${width} px wide`);
    const legacy = await context.newPage();
    await connectLegacy(legacy, vigil, token);
    await legacy.waitForSelector(rowSel(a.id));
    const lwidth = await legacy.evaluate(() => document.documentElement.scrollWidth);
    await screenshot(legacy, 'ward-legacy-360');
    assert.ok(lwidth <= 360, `legacy page is ${lwidth} px wide`);
  } finally {
    await context.close();
  }
});

// ---- 2. The offline note (last: it stops the server) -----------------------------------------

test('when polls fail the note says the server cannot be reached since when; back once a poll answers', async () => {
  await vigil.assignCareTeam('p-d2', 'hal');
  const page = await newPage(browser);
  await signInConsole(page, vigil, await vigil.token('hal', 'nurse'));
  // The stream stays blocked throughout: the page ends up polling the API.
  await page.route('**/api/v1/alerts/stream**', (route) => route.abort());
  await vigil.stop();
  try {
    await page.waitForSelector('#mode-note:not([hidden])', { timeout: 20000 });
    await page.waitForFunction(() => /cannot be reached since \d{1,2}:\d{2}/.test(document.getElementById('mode-note').textContent),
      null, { timeout: 10000 });
    const note = await page.textContent('#mode-note');
    assert.match(note, /alerts raised or changed since then are not shown/);
    assert.doesNotMatch(note, /checking for new alerts/);
    await screenshot(page, 'ward-console-unreachable');
  } finally {
    await vigil.restart();
  }
  await page.waitForFunction(() => /checking for new alerts every 5 seconds/.test(document.getElementById('mode-note').textContent),
    null, { timeout: 15000 });
  assert.doesNotMatch(await page.textContent('#mode-note'), /cannot be reached/);
  assert.deepEqual(page.problems, []);
});
