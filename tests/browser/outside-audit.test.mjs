// The outside audit: a double- or triple-click acts once (both pages); the audit trail's user
// id is legible; a critical alert already escalated when it first reaches a page is announced
// (both pages); a refused `#token=` link (both pages), or a refused token typed into the legacy
// page's form while connected, leaves the session as it was and says so; a valid link for
// another user than the one signed in is asked about first (both pages); the signed-out screen
// offers no notifications.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createHmac, randomBytes } from 'node:crypto';
import {
  Vigil, launchBrowser, newPage, signInConsole, connectLegacy, screenshot, rowSel, rowCount, waitUntil,
} from './harness.mjs';

let vigil;
let browser;

before(async () => {
  vigil = await Vigil.start('outside-audit');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await vigil?.dispose();
});

const admin = () => vigil.token('harness-admin', 'admin');

/** The actions (status) recorded on an alert, oldest first. */
async function recorded(id) {
  return (await vigil.getAlert(await admin(), id)).acknowledgments.map((k) => k.status);
}

/** Counts every action a page sends (POST …/acknowledge), per alert id. */
function countActions(page) {
  const sent = new Map();
  page.on('request', (r) => {
    const m = /\/alerts\/([^/]+)\/acknowledge$/.exec(new URL(r.url()).pathname);
    if (r.method() === 'POST' && m) sent.set(m[1], (sent.get(m[1]) || 0) + 1);
  });
  return sent;
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

/** Relative luminance contrast of two `rgb(…)` colours. */
function contrast(a, b) {
  const lum = (c) => {
    const [r, g, bl] = c.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number).map((v) => {
      const s = v / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

// ---- 1. A double-click acts once ------------------------------------------------------------

test('console: two clicks 150 ms apart, a double-click or a triple-click record one action; focus still returns', async () => {
  await vigil.assignCareTeam('p-oa1', 'olive');
  const a = await vigil.raiseAlert({ patient_id: 'p-oa1', severity: 'high', title: 'Clicked twice' });
  const b = await vigil.raiseAlert({ patient_id: 'p-oa1', severity: 'high', title: 'Double-clicked' });
  const c = await vigil.raiseAlert({ patient_id: 'p-oa1', severity: 'high', title: 'Triple-clicked' });
  const k = await vigil.raiseAlert({ patient_id: 'p-oa1', severity: 'high', title: 'By keyboard' });
  const page = await newPage(browser);
  const sent = countActions(page);
  await signInConsole(page, vigil, await vigil.token('olive', 'nurse'));
  await page.waitForSelector(rowSel(k.id));

  // Two clicks 150 ms apart: the first one's answer is in long before the second.
  const ackA = page.locator(`${rowSel(a.id)} button[data-action="acknowledged"]`);
  await ackA.click();
  await page.waitForSelector(`${rowSel(a.id)}[data-status="acknowledged"]`);
  await sleep(150);
  await ackA.click();
  // A mouse double-click on Escalate, a triple-click on Resolve.
  await page.locator(`${rowSel(b.id)} button[data-action="escalated"]`).dblclick();
  await page.locator(`${rowSel(c.id)} button[data-action="resolved"]`).click({ clickCount: 3 });
  await page.waitForSelector(`${rowSel(b.id)}[data-status="escalated"]`);
  await page.waitForSelector(`${rowSel(c.id)}[data-status="resolved"]`);
  await sleep(1500);   // past the guard: anything still to be sent has been
  assert.deepEqual(await recorded(a.id), ['acknowledged']);
  assert.deepEqual(await recorded(b.id), ['escalated']);
  assert.deepEqual(await recorded(c.id), ['resolved']);
  assert.deepEqual([sent.get(a.id), sent.get(b.id), sent.get(c.id)], [1, 1, 1], 'one request per row');
  assert.doesNotMatch(await page.textContent(`${rowSel(b.id)} details.trail summary`), /actions/);
  assert.equal(await page.textContent(`${rowSel(c.id)} .row-error`), '', 'no "already resolved" for her own resolve');

  // Later, a click is a new action again …
  await page.locator(`${rowSel(a.id)} button[data-action="escalated"]`).click();
  await page.waitForSelector(`${rowSel(a.id)}[data-status="escalated"]`);
  assert.deepEqual(await recorded(a.id), ['acknowledged', 'escalated']);
  // … and Resolve on an alert she resolved herself says so, not "Conflict" as if a colleague took it.
  await page.locator(`${rowSel(c.id)} button[data-action="resolved"]`).click();
  await page.waitForFunction((sel) => document.querySelector(sel).textContent !== '', `${rowSel(c.id)} .row-error`);
  const said = await page.textContent(`${rowSel(c.id)} .row-error`);
  assert.match(said, /You have already resolved this alert: nothing more was recorded/);
  assert.doesNotMatch(said, /Conflict/);
  assert.deepEqual(await recorded(c.id), ['resolved']);

  // The keyboard: Enter acts once, the focus comes back to the button, and Enter held down
  // (repeated at once) is not a second action.
  const escK = page.locator(`${rowSel(k.id)} button[data-action="escalated"]`);
  await escK.focus();
  await page.keyboard.press('Enter');
  await page.waitForSelector(`${rowSel(k.id)}[data-status="escalated"]`);
  await waitUntil(() => page.evaluate((id) => {
    const f = document.activeElement;
    return f && f.dataset.action === 'escalated' && f.closest('.alert-row')?.dataset.alertId === id;
  }, k.id), { timeout: 5000, message: 'focus back on the row\'s escalate button' });
  await page.keyboard.press('Enter');
  await sleep(1200);
  assert.deepEqual(await recorded(k.id), ['escalated']);
  assert.deepEqual(page.problems, []);
});

test('legacy: two clicks on Escalate 150–300 ms apart, or a double-click, record one action', async () => {
  await vigil.assignCareTeam('p-oa2', 'lena');
  const a = await vigil.raiseAlert({ patient_id: 'p-oa2', severity: 'high', title: 'Legacy clicked twice' });
  const b = await vigil.raiseAlert({ patient_id: 'p-oa2', severity: 'high', title: 'Legacy double-clicked' });
  const c = await vigil.raiseAlert({ patient_id: 'p-oa2', severity: 'high', title: 'Legacy triple-clicked' });
  const legacy = await newPage(browser);
  await connectLegacy(legacy, vigil, await vigil.token('lena', 'nurse'));
  await legacy.waitForSelector(rowSel(c.id));
  const escA = legacy.locator(`${rowSel(a.id)} button[data-action="escalated"]`);
  await escA.click();
  await legacy.waitForSelector(`${rowSel(a.id)}[data-status="escalated"]`);
  await sleep(200);
  await escA.click();
  await legacy.locator(`${rowSel(b.id)} button[data-action="acknowledged"]`).dblclick();
  await legacy.locator(`${rowSel(c.id)} button[data-action="resolved"]`).click({ clickCount: 3 });
  await legacy.waitForSelector(`${rowSel(b.id)}[data-status="acknowledged"]`);
  await legacy.waitForSelector(`${rowSel(c.id)}[data-status="resolved"]`);
  await sleep(1500);
  assert.deepEqual(await recorded(a.id), ['escalated']);
  assert.deepEqual(await recorded(b.id), ['acknowledged']);
  assert.deepEqual(await recorded(c.id), ['resolved']);
  assert.equal(await legacy.textContent(`${rowSel(c.id)} .row-error`), '');
  // Later, Resolve again on her own resolve: said as hers, not as a conflict.
  await legacy.locator(`${rowSel(c.id)} button[data-action="resolved"]`).click();
  await legacy.waitForFunction((sel) => document.querySelector(sel).textContent !== '', `${rowSel(c.id)} .row-error`);
  assert.match(await legacy.textContent(`${rowSel(c.id)} .row-error`), /You have already resolved this alert/);
  assert.deepEqual(legacy.problems, []);
});

// ---- 2. The audit trail's user id ------------------------------------------------------------

test('console: the user id in the expanded audit trail is legible; the header\'s user label stays light on the dark bar', async () => {
  await vigil.assignCareTeam('p-oa3', 'trudy');
  const a = await vigil.raiseAlert({ patient_id: 'p-oa3', severity: 'high', title: 'Trail to read' });
  const r = await vigil.api('POST', `/api/v1/alerts/${a.id}/acknowledge`, {
    token: await vigil.token('trudy', 'nurse'), body: { status: 'acknowledged', note: 'on my way' },
  });
  assert.equal(r.status, 200);
  const page = await newPage(browser);
  await signInConsole(page, vigil, await vigil.token('trudy', 'nurse'));
  await page.locator(`${rowSel(a.id)} details.trail summary`).click();
  const colours = await page.evaluate((sel) => {
    const who = document.querySelector(`${sel} details.trail li .who`);
    const header = document.getElementById('who');
    return {
      trail: getComputedStyle(who).color, trailText: who.textContent,
      header: getComputedStyle(header).color, bar: getComputedStyle(document.querySelector('header.bar')).backgroundColor,
    };
  }, rowSel(a.id));
  assert.equal(colours.trailText, 'trudy');
  const onRow = contrast(colours.trail, 'rgb(255, 255, 255)');
  assert.ok(onRow >= 4.5, `trail user id ${colours.trail} on white: ${onRow.toFixed(2)}:1`);
  const onBar = contrast(colours.header, colours.bar);
  assert.ok(onBar >= 4.5, `header user ${colours.header} on ${colours.bar}: ${onBar.toFixed(2)}:1`);
  await screenshot(page, 'outside-audit-trail-user');
  assert.deepEqual(page.problems, []);
});

// ---- 3. A critical alert already escalated when it first arrives ----------------------------

test('console: a critical alert raised and escalated during an outage is announced on reconnect; an announced one is not again', async () => {
  await vigil.assignCareTeam('p-oa4', 'esme');
  const page = await newPage(browser);
  await page.clock.install();   // time flows as usual; runFor below fires what is gathered
  const streams = [];
  page.on('request', (r) => { if (r.url().includes('/api/v1/alerts/stream')) streams.push(r.url()); });
  await signInConsole(page, vigil, await vigil.token('esme', 'nurse'));
  await recordSpoken(page);
  // Announced once while open; escalated live afterwards, it is not announced again.
  const live = await vigil.raiseAlert({ patient_id: 'p-oa4', severity: 'critical', title: 'Announced while open' });
  await page.waitForSelector(rowSel(live.id));
  const esc = await vigil.api('POST', `/api/v1/alerts/${live.id}/acknowledge`, { token: await admin(), body: { status: 'escalated' } });
  assert.equal(esc.status, 200);
  await page.waitForSelector(`${rowSel(live.id)}[data-status="escalated"]`);

  // The reconnect is held back until the alert below is raised and escalated.
  let release;
  const gate = new Promise((r) => { release = r; });
  await page.route('**/api/v1/alerts/stream**', async (route) => { await gate; await route.continue(); });
  const before = streams.length;
  await vigil.restart();
  await waitUntil(() => streams.length > before, { timeout: 10000, message: 'the page to try the stream again' });
  const away = await vigil.raiseAlert({ patient_id: 'p-oa4', severity: 'critical', title: 'Escalated while the page was away' });
  const r = await vigil.api('POST', `/api/v1/alerts/${away.id}/acknowledge`, { token: await admin(), body: { status: 'escalated', note: 'need a doctor' } });
  assert.equal(r.status, 200);
  release();

  await page.waitForSelector('#connection-status[data-state="live"]', { timeout: 15000 });
  await page.waitForSelector(`${rowSel(away.id)}[data-status="escalated"]`);
  await waitUntil(async () => (await page.evaluate(() => window.__spoken)).join(' ').includes('while the page was away'),
    { timeout: 5000, message: 'the escalated critical alert to be announced' });
  await page.clock.runFor(1000);
  const spoken = await page.evaluate(() => window.__spoken);
  assert.equal(spoken.filter((t) => t.includes('while the page was away')).length, 1, `announced: ${spoken.join(' | ')}`);
  assert.equal(spoken.filter((t) => t.includes('Announced while open')).length, 1, `announced: ${spoken.join(' | ')}`);
  const toasts = await page.locator('#toasts .toast p').allTextContents();
  assert.ok(toasts.some((t) => t.includes('while the page was away')), JSON.stringify(toasts));
  assert.deepEqual(page.problems, []);
});

test('legacy: a critical alert raised and escalated while the socket was down is announced by the catch-up', async () => {
  await vigil.assignCareTeam('p-oa5', 'finn');
  const legacy = await newPage(browser);
  await legacy.clock.install();   // time flows as usual until paused below
  await connectLegacy(legacy, vigil, await vigil.token('finn', 'nurse'));
  await recordSpoken(legacy);
  // The page's timers stand still: its reconnect waits until the alert is raised and escalated.
  await legacy.clock.pauseAt(Date.now() + 200);
  await vigil.restart();
  await legacy.waitForSelector('#connection-status[data-state="offline"]', { timeout: 10000 });
  const away = await vigil.raiseAlert({ patient_id: 'p-oa5', severity: 'critical', title: 'Escalated while the socket was down' });
  const r = await vigil.api('POST', `/api/v1/alerts/${away.id}/acknowledge`, { token: await admin(), body: { status: 'escalated' } });
  assert.equal(r.status, 200);
  await legacy.clock.resume();
  await legacy.waitForSelector('#connection-status[data-state="live"]', { timeout: 15000 });
  await legacy.waitForSelector(`${rowSel(away.id)}[data-status="escalated"]`, { timeout: 10000 });
  await waitUntil(async () => (await legacy.evaluate(() => window.__spoken)).join(' ').includes('while the socket was down'),
    { timeout: 5000, message: 'the escalated critical alert to be announced' });
  assert.equal(await rowCount(legacy, away.id), 1);
  assert.deepEqual(legacy.problems, []);
});

// ---- 4. A refused #token= link -----------------------------------------------------------------

test('console: a refused #token= link leaves the session open here as it was, and says so', async () => {
  await vigil.assignCareTeam('p-oa6', 'dan');
  const a = await vigil.raiseAlert({ patient_id: 'p-oa6', severity: 'high', title: 'Dan\'s patient' });
  const dan = await vigil.token('dan', 'dispatcher');
  const page = await newPage(browser);
  const deletes = [];
  page.on('request', (r) => { if (r.method() === 'DELETE' && r.url().endsWith('/api/v1/session')) deletes.push(r.url()); });
  const noted = () => page.waitForFunction(
    () => /sign-in link did not work/.test(document.getElementById('scope-note').textContent),
  );

  // A link opened on the page already showing dan's console (garbage, not even a token):
  // the console goes on, whole, and says the link did not work. Ending dan's session would
  // let any link sign a ward console out, and a console signed out shows no alerts.
  await signInConsole(page, vigil, dan);
  await page.waitForSelector(rowSel(a.id));
  await page.evaluate(() => { location.hash = '#token=garbage'; });
  await noted();
  assert.match(await page.textContent('#scope-note'), /This is not a valid token.*Still signed in as dan/);
  assert.equal(await page.isVisible('#signin-view'), false, 'no sign-in form over dan\'s console');
  assert.match(await page.textContent('#who'), /^dan/);
  assert.equal(await rowCount(page, a.id), 1, 'dan\'s list stays');
  assert.equal(await page.isVisible('#sign-out'), true);
  await screenshot(page, 'outside-audit-link-refused');

  // A page loaded with a token link shaped right but refused (another server's key), on
  // dan's cookie: it opens as it would without the link, saying so.
  await page.goto('about:blank');
  await page.goto(`${vigil.baseUrl}/#token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl`);
  await page.waitForSelector('#connection-status[data-state="live"]');
  await noted();
  assert.match(await page.textContent('#who'), /^dan/);
  assert.equal(deletes.length, 0, 'the cookie was kept');

  // With no session in the browser, the form says why.
  const fresh = await newPage(browser);
  await fresh.goto(`${vigil.baseUrl}/#token=garbage`);
  await fresh.waitForSelector('#signin-view', { state: 'visible' });
  assert.match(await fresh.textContent('#signin-message'), /sign-in link did not work: This is not a valid token/);
  assert.equal(await fresh.isVisible('#notify-btn'), false);
  assert.deepEqual(page.problems, []);
  assert.deepEqual(fresh.problems, []);
});

// A valid link for another user than the one signed in here is asked about, not followed:
// on a shared ward screen, a link opened from an e-mail, a chat message or another site had
// switched the ward's console to that user without a word (another patient scope, and
// acknowledgments recorded under that user).

/** Who this page's session cookie is for, asked of the server (GET /api/v1/session). */
async function cookieUser(page) {
  const r = await page.request.get(`${vigil.baseUrl}/api/v1/session`);
  return r.status() === 200 ? (await r.json()).user_id : `HTTP ${r.status()}`;
}

/** Follows a `#token=` link on the page already showing. */
const openLink = (page, token) => page.evaluate((t) => { location.hash = `#token=${t}`; }, token);

/** Waits for the question, or (the defect) for `user` signed in without one; then the
 *  header must still name `me`. */
async function askedNotSwitched(page, user, me) {
  await page.waitForFunction((u) => {
    const box = document.getElementById('link-ask');
    return (box && !box.hidden) || document.getElementById('who').textContent.startsWith(u);
  }, user);
  assert.ok((await page.textContent('#who')).startsWith(me), `the link switched the page to ${user} unasked`);
  await page.waitForSelector('#link-ask', { state: 'visible' });
}

/** The question's text, or null while it is not shown. */
const question = (page) => page.evaluate(() => {
  const box = document.getElementById('link-ask');
  return box && !box.hidden ? box.textContent.replace(/\s+/g, ' ').trim() : null;
});

test('console: a valid #token= link for another user asks first; Stay keeps the session, Switch signs the link\'s user in', async () => {
  await vigil.assignCareTeam('p-oa8', 'dan');
  await vigil.assignCareTeam('p-oa8b', 'bob');
  const his = await vigil.raiseAlert({ patient_id: 'p-oa8', severity: 'high', title: 'Dan\'s patient, ward 8' });
  const bobs = await vigil.raiseAlert({ patient_id: 'p-oa8b', severity: 'high', title: 'Bob\'s patient only' });
  const page = await newPage(browser);
  await signInConsole(page, vigil, await vigil.token('dan', 'dispatcher'));
  await page.waitForSelector(rowSel(his.id));
  const bob = await vigil.token('bob', 'nurse');

  await openLink(page, bob);
  // A question, or (the defect) bob signed in without one.
  await page.waitForFunction(() => {
    const box = document.getElementById('link-ask');
    return (box && !box.hidden) || /^bob/.test(document.getElementById('who').textContent);
  });
  // Dan's console runs on, whole: his name, his cookie, his list, live.
  assert.match(await page.textContent('#who'), /^dan \(dispatcher\)/, 'the link switched the console unasked');
  assert.equal(await cookieUser(page), 'dan');
  await page.waitForSelector('#link-ask', { state: 'visible' });
  assert.equal(await page.textContent('#link-ask-text'), 'This link signs in as bob (nurse). You are signed in as dan.');
  assert.equal(await page.textContent('#link-switch'), 'Switch to bob');
  assert.equal(await page.textContent('#link-stay'), 'Stay signed in as dan');
  assert.equal(await page.getAttribute('#link-live', 'role'), 'alert');
  await page.evaluate(() => new Promise((r) => setTimeout(r, 500)));
  assert.match(await page.textContent('#who'), /^dan \(dispatcher\)/);
  assert.equal(await rowCount(page, his.id), 1);
  assert.equal(await rowCount(page, bobs.id), 0);
  assert.equal(await page.isVisible('#sign-out'), true);
  await page.waitForSelector('#connection-status[data-state="live"]');
  assert.equal(await cookieUser(page), 'dan');
  await screenshot(page, 'outside-audit-link-question');
  // On a phone, the question and both answers fit the screen's width.
  await page.setViewportSize({ width: 360, height: 780 });
  const overflow = await page.evaluate(() => ['link-ask', 'link-switch', 'link-stay']
    .filter((id) => document.getElementById(id).getBoundingClientRect().right > window.innerWidth));
  assert.deepEqual(overflow, [], 'wider than a 360 px screen');
  await screenshot(page, 'outside-audit-link-question-360');
  await page.setViewportSize({ width: 1100, height: 900 });

  // Stay: the question goes, nothing else changes.
  await page.click('#link-stay');
  assert.equal(await question(page), null);
  assert.match(await page.textContent('#who'), /^dan \(dispatcher\)/);
  assert.equal(await rowCount(page, his.id), 1);
  assert.equal(await cookieUser(page), 'dan');

  // A link for another user that the server refuses (another server's key) is not asked
  // about: the refused link's note, at once.
  await openLink(page, 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl');
  await page.waitForFunction(() => /sign-in link did not work/.test(document.getElementById('scope-note').textContent));
  assert.equal(await question(page), null);

  // A second link replaces the question showing (the latest link wins); Switch signs in
  // with it, as a link did before.
  await openLink(page, await vigil.token('eve', 'nurse'));
  await waitUntil(async () => /signs in as eve/.test(await question(page) || ''), { message: 'the question for eve' });
  await openLink(page, bob);
  await waitUntil(async () => /signs in as bob/.test(await question(page) || ''), { message: 'the question for bob' });
  assert.doesNotMatch(await question(page), /eve/);
  assert.equal(await cookieUser(page), 'dan');
  await page.click('#link-switch');
  await page.waitForFunction(() => document.getElementById('who').textContent.startsWith('bob'));
  await page.waitForSelector(rowSel(bobs.id));
  await page.waitForSelector('#connection-status[data-state="live"]');
  assert.equal(await rowCount(page, his.id), 0, 'dan\'s patient in bob\'s list');
  assert.equal(await question(page), null);
  assert.equal(await cookieUser(page), 'bob');
  assert.deepEqual(page.problems, []);
});

test('console: a page loaded with a link for another user opens the session held here, and asks; with none held, the link signs in', async () => {
  await vigil.assignCareTeam('p-oa9', 'dan');
  const his = await vigil.raiseAlert({ patient_id: 'p-oa9', severity: 'high', title: 'Dan\'s patient, ward 9' });
  const dan = await vigil.token('dan', 'dispatcher');
  const bob = await vigil.token('bob', 'nurse');
  const page = await newPage(browser);
  // Every sign-in the page sends with a token (the form's, a link's).
  const posted = [];
  page.on('request', async (r) => {
    if (r.method() !== 'POST' || !r.url().endsWith('/api/v1/session')) return;
    const auth = (await r.allHeaders()).authorization;
    if (auth) posted.push(auth);
  });
  await signInConsole(page, vigil, dan);
  await page.goto('about:blank');
  posted.length = 0;

  // Dan's session is held here: the link's token is not sent; dan's console opens, asking.
  await page.goto(`${vigil.baseUrl}/#token=${bob}`);
  await page.waitForSelector('#connection-status[data-state="live"]');
  assert.match(await page.textContent('#who'), /^dan \(dispatcher\)/, 'the link switched the console unasked');
  assert.deepEqual(posted, [], 'the link\'s token was signed in with before anyone answered');
  assert.equal(await cookieUser(page), 'dan');
  await page.waitForSelector('#link-ask', { state: 'visible' });
  assert.equal(await page.textContent('#link-ask-text'), 'This link signs in as bob (nurse). You are signed in as dan.');
  await page.waitForSelector(rowSel(his.id));
  assert.equal(page.url(), `${vigil.baseUrl}/`, 'the token left the address bar');
  await screenshot(page, 'outside-audit-link-question-at-load');

  // Signing out dismisses the question; the next sign-in does not bring it back.
  await page.click('#sign-out');
  await page.waitForSelector('#signin-view', { state: 'visible' });
  assert.equal(await question(page), null);
  assert.equal(await page.getAttribute('#link-ask', 'hidden'), '');
  await page.fill('#token-input', dan);
  await page.click('#sign-in');
  await page.waitForSelector('#connection-status[data-state="live"]');
  assert.equal(await question(page), null);
  await page.click('#sign-out');
  await page.waitForSelector('#signin-view', { state: 'visible' });

  // The hint names dan but his cookie is gone (signed out): no session to keep, so the link
  // signs bob in at once, as before.
  await page.evaluate(() => localStorage.setItem('vigil.session', JSON.stringify({ user_id: 'dan', role: 'dispatcher' })));
  await page.goto('about:blank');
  await page.goto(`${vigil.baseUrl}/#token=${bob}`);
  await page.waitForSelector('#connection-status[data-state="live"]');
  assert.match(await page.textContent('#who'), /^bob \(nurse\)/);
  assert.equal(await question(page), null);
  assert.equal(await cookieUser(page), 'bob');
  assert.deepEqual(page.problems, []);
});

test('console: a link for the user signed in here renews the session without a question, and replaces one showing', async () => {
  const page = await newPage(browser);
  const renewals = [];
  page.on('response', async (r) => {
    if (r.request().method() !== 'POST' || !r.url().endsWith('/api/v1/session')) return;
    if ((await r.request().allHeaders()).authorization) renewals.push(r.status());
  });
  await signInConsole(page, vigil, await vigil.token('dan', 'dispatcher'));
  renewals.length = 0;
  // A question showing (a link for bob) …
  await openLink(page, await vigil.token('bob', 'nurse'));
  await askedNotSwitched(page, 'bob', 'dan');
  // … is replaced by dan's own link (another token of his, a longer one): no question, the
  // session renewed with it.
  await openLink(page, await vigil.token('dan', 'dispatcher', { ttl: '3h' }));
  await waitUntil(() => renewals.length === 1, { message: 'the link\'s sign-in' });
  assert.deepEqual(renewals, [200]);
  await page.waitForSelector('#connection-status[data-state="live"]');
  assert.equal(await question(page), null);
  assert.match(await page.textContent('#who'), /^dan \(dispatcher\)/);
  // And once more with no question showing: no question either.
  await openLink(page, await vigil.token('dan', 'dispatcher', { ttl: '2h' }));
  await waitUntil(() => renewals.length === 2, { message: 'the second link\'s sign-in' });
  await page.waitForSelector('#connection-status[data-state="live"]');
  assert.equal(await question(page), null);
  assert.equal(await cookieUser(page), 'dan');
  assert.deepEqual(page.problems, []);
});

test('legacy: a #token= link for another user asks first; Stay keeps the connection, Switch connects the link\'s user', async () => {
  await vigil.assignCareTeam('p-oa10', 'dan');
  const his = await vigil.raiseAlert({ patient_id: 'p-oa10', severity: 'high', title: 'Dan\'s patient, legacy' });
  const page = await newPage(browser);
  await connectLegacy(page, vigil, await vigil.token('dan', 'dispatcher'));
  await page.waitForSelector(rowSel(his.id));
  await openLink(page, await vigil.token('bob', 'nurse'));
  await askedNotSwitched(page, 'bob', 'dan');
  assert.equal(await page.textContent('#link-ask-text'), 'This link signs in as bob (nurse). You are connected as dan.');
  assert.equal(await page.textContent('#link-stay'), 'Stay connected as dan');
  await page.evaluate(() => new Promise((r) => setTimeout(r, 500)));
  assert.match(await page.textContent('#who'), /^dan/);
  assert.equal(await rowCount(page, his.id), 1);
  await page.waitForSelector('#connection-status[data-state="live"]');
  await screenshot(page, 'outside-audit-legacy-link-question');
  await page.click('#link-stay');
  assert.equal(await question(page), null);
  assert.match(await page.textContent('#who'), /^dan/);
  assert.equal(await rowCount(page, his.id), 1);
  // Switch.
  await openLink(page, await vigil.token('bob', 'nurse'));
  await page.waitForSelector('#link-ask', { state: 'visible' });
  await page.click('#link-switch');
  await page.waitForFunction(() => document.getElementById('who').textContent.startsWith('bob'));
  await page.waitForSelector('#connection-status[data-state="live"]');
  assert.equal(await rowCount(page, his.id), 0, 'dan\'s patient in bob\'s list');
  assert.equal(await question(page), null);
  assert.deepEqual(page.problems, []);
});

// A token the server refuses (expired, signed with another key, unreadable) must not end the
// legacy dashboard's running connection: a ward dashboard gone blank because of a bad link or
// paste shows no alerts. The page asks the server first (GET /api/v1/session) and gives the
// session up only for a token it accepts.

/** A well-formed HS256 token for `claims`, in date, signed with another key than the server's. */
function forged(claims) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const signed = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ iat: now, exp: now + 3600, ...claims })}`;
  return `${signed}.${createHmac('sha256', randomBytes(32)).update(signed).digest('base64url')}`;
}

/** Counts the WebSockets a page opens. */
function countSockets(page) {
  const opened = { n: 0 };
  page.on('websocket', () => { opened.n += 1; });
  return opened;
}

/** Waits until the legacy page's notice says what became of a new token (or, the defect,
 *  that the session it replaced stopped); returns the notice. */
async function tokenNotice(page) {
  await page.waitForFunction(
    () => /did not work|could not be checked|Paste a new token|Paste another token|Close one|retrying/
      .test(document.getElementById('notice').textContent),
    null, { timeout: 15000 },
  );
  return page.textContent('#notice');
}

/** Dan's legacy connection runs on: his name, the list, live, on the one socket it opened,
 *  and an alert raised now reaches it. */
async function stillDan(page, sockets, patient, kept) {
  assert.match(await page.textContent('#who'), /^dan \(dispatcher\)/);
  assert.equal(await rowCount(page, kept.id), 1, 'dan\'s list was cleared');
  assert.equal(await page.getAttribute('#connection-status', 'data-state'), 'live');
  assert.equal(await page.isEnabled('#disconnect'), true);
  const fresh = await vigil.raiseAlert({ patient_id: patient, severity: 'high', title: `Raised after the refusal ${Date.now()}` });
  await page.waitForSelector(rowSel(fresh.id));
  assert.equal(sockets.n, 1, 'the socket was closed and another opened');
}

test('legacy: a refused #token= link for the same user leaves the connection running, and says so', async () => {
  await vigil.assignCareTeam('p-oa11', 'dan');
  const kept = await vigil.raiseAlert({ patient_id: 'p-oa11', severity: 'high', title: 'Dan\'s patient, legacy link' });
  const expired = await vigil.token('dan', 'dispatcher', { ttl: '1s' });
  const page = await newPage(browser);
  const sockets = countSockets(page);
  await connectLegacy(page, vigil, await vigil.token('dan', 'dispatcher'));
  await page.waitForSelector(rowSel(kept.id));
  await sleep(Math.max(0, JSON.parse(Buffer.from(expired.split('.')[1], 'base64url')).exp * 1000 - Date.now()) + 100);

  // Dan's own token, expired: the same user, so no question; the server refuses it.
  await openLink(page, expired);
  assert.equal(await tokenNotice(page), 'The sign-in link did not work: token expired. Still connected as dan.');
  await stillDan(page, sockets, 'p-oa11', kept);
  await screenshot(page, 'outside-audit-legacy-link-refused');

  // A link shaped like a token whose payload cannot be read (no name to ask about).
  await openLink(page, 'abc.def.ghi');
  assert.match(await tokenNotice(page), /^The sign-in link did not work: token malformed.*\. Still connected as dan\.$/);
  await stillDan(page, sockets, 'p-oa11', kept);

  // One that is not a token at all.
  await openLink(page, 'garbage');
  assert.match(await tokenNotice(page), /^The sign-in link did not work: it is not a valid token .*Still connected as dan\.$/);
  await stillDan(page, sockets, 'p-oa11', kept);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('legacy: "Switch to …" for a link the server refuses keeps the connection running, and says so', async () => {
  await vigil.assignCareTeam('p-oa12', 'dan');
  const kept = await vigil.raiseAlert({ patient_id: 'p-oa12', severity: 'high', title: 'Dan\'s patient, legacy switch' });
  const page = await newPage(browser);
  const sockets = countSockets(page);
  await connectLegacy(page, vigil, await vigil.token('dan', 'dispatcher'));
  await page.waitForSelector(rowSel(kept.id));

  await openLink(page, forged({ sub: 'bob', role: 'nurse' }));
  await askedNotSwitched(page, 'bob', 'dan');
  assert.equal(await page.textContent('#link-ask-text'), 'This link signs in as bob (nurse). You are connected as dan.');
  await page.click('#link-switch');
  assert.equal(await tokenNotice(page), 'The sign-in link did not work: token signature invalid. Still connected as dan.');
  assert.equal(await question(page), null);
  await stillDan(page, sockets, 'p-oa12', kept);
  await screenshot(page, 'outside-audit-legacy-switch-refused');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('legacy: a refused token typed in while connected leaves the connection running; one not checked is not used', async () => {
  await vigil.assignCareTeam('p-oa13', 'dan');
  await vigil.assignCareTeam('p-oa13b', 'bob');
  const kept = await vigil.raiseAlert({ patient_id: 'p-oa13', severity: 'high', title: 'Dan\'s patient, legacy form' });
  const bobs = await vigil.raiseAlert({ patient_id: 'p-oa13b', severity: 'high', title: 'Bob\'s patient, legacy form' });
  const page = await newPage(browser);
  const sockets = countSockets(page);
  await connectLegacy(page, vigil, await vigil.token('dan', 'dispatcher'));
  await page.waitForSelector(rowSel(kept.id));

  await page.fill('#token-input', forged({ sub: 'carol', role: 'nurse' }));
  await page.click('#sign-in');
  assert.equal(await tokenNotice(page), 'That token did not work: token signature invalid. Still connected as dan.');
  assert.equal(await page.inputValue('#token-input'), '', 'the refused token left on screen');
  await stillDan(page, sockets, 'p-oa13', kept);
  await screenshot(page, 'outside-audit-legacy-typed-refused');

  // The check cannot reach the server: the token is not used, the connection runs on.
  const bob = await vigil.token('bob', 'nurse');
  await page.route('**/api/v1/session', (r) => r.abort('connectionrefused'));
  await page.fill('#token-input', bob);
  await page.click('#sign-in');
  assert.equal(await tokenNotice(page), 'That token could not be checked: the server cannot be reached. It was not used. Still connected as dan.');
  await stillDan(page, sockets, 'p-oa13', kept);
  await page.unroute('**/api/v1/session');

  // A token the server accepts still switches, as before.
  await page.fill('#token-input', bob);
  await page.click('#sign-in');
  await page.waitForFunction(() => document.getElementById('who').textContent.startsWith('bob'));
  await page.waitForSelector('#connection-status[data-state="live"]');
  await page.waitForSelector(rowSel(bobs.id));
  assert.equal(await rowCount(page, kept.id), 0, 'dan\'s patient in bob\'s list');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

// ---- 5. A first visit ---------------------------------------------------------------------------

test('console: a first visit offers no notifications; a cookie session opens by itself, with or without the page\'s hint', async () => {
  await vigil.assignCareTeam('p-oa7', 'gus');
  const page = await newPage(browser);
  await page.goto(`${vigil.baseUrl}/`);
  await page.waitForSelector('#signin-view', { state: 'visible' });
  assert.equal(await page.isVisible('#notify-btn'), false);

  // A cookie set through the API alone (no sign-in on the page, so no hint in its storage)
  // opens the console.
  const kiosk = await newPage(browser);
  const set = await kiosk.request.post(`${vigil.baseUrl}/api/v1/session`, {
    headers: { Authorization: `Bearer ${await vigil.token('gus', 'nurse')}` },
  });
  assert.equal(set.status(), 200);
  await kiosk.goto(`${vigil.baseUrl}/`);
  await kiosk.waitForSelector('#connection-status[data-state="live"]', { timeout: 10000 });
  await kiosk.context().close();

  // Signed in, a second tab of the browser opens the console from the cookie, as before.
  await page.fill('#token-input', await vigil.token('gus', 'nurse'));
  await page.click('#sign-in');
  await page.waitForSelector('#connection-status[data-state="live"]');
  const tab = await page.context().newPage();
  await tab.goto(`${vigil.baseUrl}/`);
  await tab.waitForSelector('#connection-status[data-state="live"]', { timeout: 10000 });
  assert.match(await tab.textContent('#who'), /^gus \(nurse\)/);
  // Signed out, the form offers no notifications.
  await tab.click('#sign-out');
  await tab.waitForSelector('#signin-view', { state: 'visible' });
  assert.equal(await tab.isVisible('#notify-btn'), false);
  assert.deepEqual(page.problems, []);
});
