// An outside audit of the console: what it shows must stay true while things around it change —
// a care team while the tab only polls, a server error at page load, an alert a colleague took,
// a note still being typed, a row taken away under the focus, right-to-left text, the clock.
// One finding per test.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import {
  Vigil, launchBrowser, newPage, pageIn, signInConsole, signInHere, connectLegacy, freePort, rowSel, waitUntil,
} from './harness.mjs';

let vigil;
let browser;

before(async () => {
  vigil = await Vigil.start('resilience');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await vigil?.dispose();
});

/**
 * An HTTP proxy on a free loopback port in front of `targetPort`. `failAlertList()` makes it
 * answer every GET of the alert list (`/api/v1/alerts…`, not the stream) itself with the 503
 * Vigil sends while its database is unreachable; `pass()` forwards everything again.
 */
async function startAlertListProxy(targetPort) {
  const port = await freePort();
  let failing = false;
  const server = http.createServer((req, res) => {
    const path = req.url || '';
    if (failing && req.method === 'GET' && /^\/api\/v1\/alerts(?:[/?]|$)/.test(path) && !path.startsWith('/api/v1/alerts/stream')) {
      res.writeHead(503, { 'Content-Type': 'application/problem+json', 'Retry-After': '5' });
      res.end(JSON.stringify({
        type: 'about:blank', title: 'Service Unavailable', status: 503,
        detail: 'the database is unreachable; nothing was changed, retry later',
      }));
      return;
    }
    const upstream = http.request({ host: '127.0.0.1', port: targetPort, path, method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => { if (!res.headersSent) res.writeHead(502); res.end(); });
    req.pipe(upstream);
    res.on('close', () => upstream.destroy());   // a stream the page closed is closed upstream too
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    failAlertList() { failing = true; },
    pass() { failing = false; },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close').catch(() => {});
    },
  };
}

/**
 * Init script: a browser whose notifications are allowed, with `Notification` replaced by a
 * recorder. `window.__notifications` holds one {title, tag, closes} per notification built.
 */
function mockNotifications() {
  window.__notifications = [];
  class RecordedNotification extends EventTarget {
    constructor(title, options = {}) {
      super();
      this.title = String(title);
      this.tag = options.tag === undefined ? '' : String(options.tag);
      this.body = options.body === undefined ? '' : String(options.body);
      this.onclick = null;
      this.onclose = null;
      this.onshow = null;
      this.onerror = null;
      this.record = { title: this.title, tag: this.tag, closes: 0 };
      window.__notifications.push(this.record);
    }

    close() {
      this.record.closes += 1;
      if (this.record.closes > 1) return;
      const e = new Event('close');
      this.dispatchEvent(e);
      if (typeof this.onclose === 'function') this.onclose(e);
    }

    static get permission() { return 'granted'; }

    static requestPermission(callback) {
      if (typeof callback === 'function') callback('granted');
      return Promise.resolve('granted');
    }
  }
  Object.defineProperty(window, 'Notification', { value: RecordedNotification, configurable: true, writable: true });
}

const notificationsOf = (page) => page.evaluate(() => window.__notifications.map((n) => ({ ...n })));

// ---- 1. A polling tab and the care team ------------------------------------------------------

/**
 * A tab refused a stream (the per-user stream limit: the nurse's other tab holds it) kept its
 * list current by asking for changes after its cursor, and that is all it ever asked. A
 * care-team change never reached it: the open critical alert of a patient she was just
 * assigned (raised before, so no later change carries it) never showed, and the alert of the
 * patient she was taken off stayed, "Open" and counted, after a colleague resolved it (she may
 * no longer read it, so no poll brings its change). The nurse saw a list that was not hers.
 * A polling tab now reloads its whole list every third check (every 15 s), and before it
 * compares the patients the session sees (GET /api/v1/session) with the last it knew, saying
 * a change as a stream's `scope_changed` would.
 */
test('a tab that polls follows a care-team change: the new patient\'s alerts show, the old patient\'s go', async () => {
  const limited = await Vigil.start('resilience-polling-scope', { VIGIL_MAX_STREAMS_PER_USER: '1' });
  const pages = [];
  try {
    await limited.assignCareTeam('p-r1a', 'nina');
    await limited.assignCareTeam('p-r1a', 'olga');
    const old = await limited.raiseAlert({ patient_id: 'p-r1a', severity: 'critical', title: 'VF on the old patient' });
    // Raised before nina is on p-r1b's team: no event or poll after her cursor carries it.
    const earlier = await limited.raiseAlert({ patient_id: 'p-r1b', severity: 'critical', title: 'Asystole on the new patient' });
    const token = await limited.token('nina', 'nurse');
    const tabA = await newPage(browser);   // holds nina's one stream
    pages.push(tabA);
    await signInConsole(tabA, limited, token);
    const tabB = await newPage(browser);
    pages.push(tabB);
    await tabB.goto(`${limited.baseUrl}/`);
    // The polling tab learns its patients once it polls (GET /api/v1/session).
    const learned = tabB.waitForResponse((res) => res.request().method() === 'GET' && res.url().endsWith('/api/v1/session'), { timeout: 30000 });
    await tabB.fill('#token-input', token);
    await tabB.click('#sign-in');
    await tabB.waitForSelector('#mode-note:not([hidden])', { timeout: 20000 });
    assert.match(await tabB.textContent('#mode-note'), /too many live streams are open for you/);
    await tabB.waitForSelector(`${rowSel(old.id)}[data-status="open"]`);
    assert.deepEqual((await (await learned).json()).patients, ['p-r1a']);

    await limited.assignCareTeam('p-r1b', 'nina');
    await limited.removeFromCareTeam('p-r1a', 'nina');
    const olga = await limited.token('olga', 'nurse');
    const r = await limited.api('POST', `/api/v1/alerts/${old.id}/acknowledge`, { token: olga, body: { status: 'resolved', note: 'done' } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    // The streaming tab has it at once (the change did happen on the server) …
    await tabA.waitForSelector(`${rowSel(earlier.id)}[data-status="open"]`, { timeout: 5000 });
    await tabA.waitForSelector(rowSel(old.id), { state: 'detached', timeout: 5000 });
    // … the polling one within two of its full reloads.
    await waitUntil(async () => {
      const seen = await tabB.evaluate(([o, e]) => ({
        oldRow: document.querySelector(`li.alert-row[data-alert-id="${o}"]`)?.dataset.status ?? 'none',
        newRow: document.querySelector(`li.alert-row[data-alert-id="${e}"]`)?.dataset.status ?? 'none',
        open: document.getElementById('open-count').textContent,
      }), [old.id, earlier.id]);
      if (seen.oldRow !== 'none' || seen.newRow !== 'open' || seen.open !== '1') throw new Error(`tab B shows ${JSON.stringify(seen)}`);
      return true;
    }, { timeout: 30000, interval: 250, message: 'the polling tab to show the new patient\'s open alert, drop the old patient\'s and count 1 open' });
    assert.equal(await tabB.textContent('#critical-count'), '1');
    // … and says why, as a stream's `scope_changed` would: rows do not vanish unexplained.
    await tabB.waitForSelector('#scope-note:not([hidden])', { timeout: 5000 });
    const said = await tabB.textContent('#scope-note');
    assert.match(said, /no longer on the care team of patient p-r1a/, said);
    assert.match(said, /you now also see patient p-r1b/, said);
    assert.equal(await tabB.getAttribute('#connection-status', 'data-state'), 'offline', 'still polling, not streaming');
    assert.deepEqual([...tabA.problems, ...tabB.problems], []);
  } finally {
    for (const p of pages) await p.context().close().catch(() => {});
    await limited.dispose();
  }
});

// ---- 2. A server error at page load -----------------------------------------------------------

/**
 * A tab opened (or reloaded) while the database was down for a moment got a 503 for its
 * alert list, took that for "no session", and wiped the session hint every tab of the
 * browser shares: every other tab of the nurse went back to sign-in saying "You signed out
 * in another tab", and the new tab sat on an empty sign-in form although her cookie was
 * still good. Now only a refused credential ends the session; a server error is said, and
 * the page tries again by itself.
 */
test('a server error at page load signs out no tab, and the tab opens the console itself once the server answers', async () => {
  await vigil.assignCareTeam('p-r2', 'rina');
  const a = await vigil.raiseAlert({ patient_id: 'p-r2', severity: 'critical', title: 'SpO2 82%' });
  const proxy = await startAlertListProxy(vigil.port);
  // One browser context: both tabs share the cookie and localStorage (one origin, the proxy's).
  const { context, page: tabA } = await pageIn(browser, { width: 1100, height: 900 });
  try {
    await tabA.goto(`${proxy.baseUrl}/`);
    await signInHere(tabA, await vigil.token('rina', 'nurse'));
    await tabA.waitForSelector(rowSel(a.id));
    // Tab A hears of every change of this browser's storage, in order: a marker written after
    // tab B's page load has been decided tells when tab A has heard all of it.
    await tabA.evaluate(() => {
      window.__markerSeen = new Promise((resolve) => {
        window.addEventListener('storage', (e) => { if (e.key === 'resilience.marker') resolve(); });
      });
    });

    proxy.failAlertList();
    const tabB = await context.newPage();
    tabB.problems = [];
    tabB.on('pageerror', (e) => tabB.problems.push(`pageerror: ${e.message}`));
    tabB.setDefaultTimeout(10000);
    const refused = tabB.waitForResponse((res) => res.url().includes('/api/v1/alerts') && res.status() === 503);
    await tabB.goto(`${proxy.baseUrl}/`);
    await refused;
    await tabB.waitForSelector('#signin-view', { state: 'visible' });
    await tabB.evaluate(() => localStorage.setItem('resilience.marker', String(Date.now())));
    await tabA.evaluate(() => Promise.race([
      window.__markerSeen,
      new Promise((_, reject) => setTimeout(() => reject(new Error('tab A never heard of the marker')), 5000)),
    ]));

    const messageA = await tabA.textContent('#signin-message');
    assert.equal(await tabA.isVisible('#signin-view'), false, `tab A was signed out by tab B's failed page load: "${messageA}"`);
    assert.equal(await tabA.isVisible('#console-view'), true);
    assert.doesNotMatch(messageA, /signed out in another tab/);
    await waitUntil(async () => /Trying again/.test(await tabB.textContent('#signin-message')),
      { timeout: 10000, message: 'tab B to say that it will try again' });
    assert.doesNotMatch(await tabB.textContent('#signin-message'), /signed out/);

    // The database is back: tab B opens the console from its cookie, with nobody signing in.
    proxy.pass();
    await tabB.waitForSelector('#console-view', { state: 'visible', timeout: 20000 });
    await tabB.waitForSelector('#connection-status[data-state="live"]', { timeout: 10000 });
    await tabB.waitForSelector(rowSel(a.id));
    assert.match(await tabB.textContent('#who'), /^rina \(nurse\)/);
    assert.equal(await tabA.getAttribute('#connection-status', 'data-state'), 'live');
    assert.equal(await tabA.isVisible('#signin-view'), false);
    assert.deepEqual([...tabA.problems, ...tabB.problems], []);
  } finally {
    await context.close();
    await proxy.close();
  }
});

// ---- 3. Browser notifications -----------------------------------------------------------------

/**
 * A critical alert's browser notification (shown until dismissed) stayed on the desktop
 * saying "Critical: …" after a colleague had acknowledged the alert, and so did its toast
 * until its own timer: the nurse went to a patient someone was already with. The
 * notification is closed and the toast removed when the alert is taken.
 */
test('an alert\'s notification is closed and its toast removed when a colleague acknowledges it', async () => {
  await vigil.assignCareTeam('p-r3', 'nell');
  await vigil.assignCareTeam('p-r3', 'olaf');
  const { context, page } = await pageIn(browser, { width: 1100, height: 900 }, mockNotifications);
  try {
    await signInConsole(page, vigil, await vigil.token('nell', 'nurse'));
    const a = await vigil.raiseAlert({ patient_id: 'p-r3', severity: 'critical', title: 'VFib on bed 4' });
    await page.waitForSelector(rowSel(a.id));
    const toast = page.locator('#toasts .toast', { hasText: 'VFib on bed 4' });
    await toast.waitFor();
    await waitUntil(async () => (await notificationsOf(page)).length > 0, { message: 'a notification for the critical alert' });
    const shownFirst = await notificationsOf(page);
    assert.equal(shownFirst.length, 1, JSON.stringify(shownFirst));
    assert.equal(shownFirst[0].tag, a.id);

    const r = await vigil.api('POST', `/api/v1/alerts/${a.id}/acknowledge`, {
      token: await vigil.token('olaf', 'nurse'), body: { status: 'acknowledged', note: 'with the patient' },
    });
    assert.equal(r.status, 200);
    await page.waitForSelector(`${rowSel(a.id)}[data-status="acknowledged"]`);
    // Within 4 s of the acknowledgment: the toast's own timer removes it 8 s after it appeared.
    await waitUntil(async () => {
      const [n] = await notificationsOf(page);
      const toasts = await toast.count();
      if (n.closes === 0 || toasts > 0) throw new Error(`notification closed: ${n.closes > 0}, toast still shown: ${toasts > 0}`);
      return true;
    }, { timeout: 4000, message: 'the acknowledged alert\'s notification to be closed and its toast removed' });
    assert.equal((await notificationsOf(page)).length, 1, 'no other notification');
    assert.deepEqual(page.problems, []);
  } finally {
    await context.close();
  }
});

/**
 * A burst of critical alerts (a monitor gateway coming back, a ward-wide fault) opened one
 * browser notification each, sixty in the audit, burying the desktop, while the page itself
 * caps its toasts at three and gathers its announcements. The first three are notified one
 * by one, the rest in one summary ("vigil-burst") saying how many more: the system shows one
 * notification per tag, so the summary is replaced (same tag) as the count grows.
 */
test('a burst of ten critical alerts shows at most four notifications: three, then one saying how many more', async () => {
  await vigil.assignCareTeam('p-r3b', 'nico');
  const { context, page } = await pageIn(browser, { width: 1100, height: 900 }, mockNotifications);
  try {
    await signInConsole(page, vigil, await vigil.token('nico', 'nurse'));
    const burst = await Promise.all(Array.from({ length: 10 }, (_, i) => vigil.raiseAlert({
      patient_id: 'p-r3b', severity: 'critical', title: `Lead off, bed ${i + 1}`,
    })));
    for (const a of burst) await page.waitForSelector(rowSel(a.id), { state: 'attached' });
    assert.equal(await page.locator('li.alert-row').count(), 10, 'every alert of the burst is in the list');
    const ids = new Set(burst.map((a) => a.id));
    // Every alert of the burst is notified: one by one, or counted in the summary's latest title.
    const accounted = (built) => {
      const single = built.filter((n) => ids.has(n.tag)).length;
      const summaries = built.filter((n) => n.tag === 'vigil-burst');
      const more = summaries.length ? Number((/(\d+) more/.exec(summaries.at(-1).title) || [])[1] || 0) : 0;
      return single + more;
    };
    await waitUntil(async () => accounted(await notificationsOf(page)) >= 10,
      { timeout: 5000, message: 'every alert of the burst notified, alone or in the summary' });
    const built = await notificationsOf(page);
    const onScreen = new Set(built.map((n) => n.tag));
    assert.ok(onScreen.size <= 4, `${onScreen.size} notifications on screen for a burst of 10: ${JSON.stringify(built.map((n) => n.title))}`);
    const single = built.filter((n) => ids.has(n.tag));
    assert.ok(single.length <= 3, JSON.stringify(built));
    assert.ok(onScreen.has('vigil-burst'), `a summary: ${JSON.stringify(built)}`);
    assert.equal(accounted(built), 10, `the summary says ${10 - single.length} more: ${JSON.stringify(built.map((n) => n.title))}`);
    assert.ok(built.every((n) => ids.has(n.tag) || n.tag === 'vigil-burst'), `every notification is one alert's or the summary: ${JSON.stringify(built)}`);
    assert.deepEqual(page.problems, []);
  } finally {
    await context.close();
  }
});

// ---- 4. A note typed while its action is on its way ---------------------------------------------

/**
 * The note field stays editable while an action is being sent, and a nurse goes on writing
 * (for the escalation she is about to make). The answer then cleared the field: what she had
 * typed meanwhile was gone, never sent. Only the text that was sent is taken out now.
 */
test('a note typed while the row\'s action is being sent is kept; one left alone is cleared', async () => {
  await vigil.assignCareTeam('p-r4', 'nuri');
  const x = await vigil.raiseAlert({ patient_id: 'p-r4', severity: 'high', title: 'BP 190/120' });
  const y = await vigil.raiseAlert({ patient_id: 'p-r4', severity: 'high', title: 'RR 30' });
  const { context, page } = await pageIn(browser, { width: 1100, height: 900 });
  try {
    await signInConsole(page, vigil, await vigil.token('nuri', 'nurse'));
    // The first acknowledgment is held on its way until the nurse has typed more.
    let release;
    const gate = new Promise((r) => { release = r; });
    let arrived;
    const held = new Promise((r) => { arrived = r; });
    await page.route('**/api/v1/alerts/*/acknowledge', async (route) => { arrived(); await gate; await route.continue(); });

    const row = page.locator(rowSel(x.id));
    const note = row.locator('.note-input');
    const idle = () => page.waitForFunction((sel) => {
      const li = document.querySelector(sel);
      return li && !li.hasAttribute('aria-busy') && !li.querySelector('button[data-action="acknowledged"]').disabled;
    }, rowSel(x.id), { timeout: 10000 });
    await note.fill('checking');
    await row.locator('button[data-action="acknowledged"]').click();
    await held;
    await note.focus();
    await page.keyboard.press('End');
    await page.keyboard.type(' then calling Dr Levi');
    assert.equal(await note.inputValue(), 'checking then calling Dr Levi');
    release();
    await page.waitForSelector(`${rowSel(x.id)}[data-status="acknowledged"]`);
    await idle();   // the answer is in: the row's buttons are back

    const stored = await vigil.getAlert(await vigil.token('harness-admin', 'admin'), x.id);
    assert.deepEqual(stored.acknowledgments.map((k) => [k.status, k.note]), [['acknowledged', 'checking']]);
    assert.equal(await note.inputValue(), 'then calling Dr Levi', 'the text typed while the acknowledgment was on its way is kept');

    // A note left alone while it is sent is cleared, as before.
    const other = page.locator(rowSel(y.id));
    await other.locator('.note-input').fill('on my way');
    const answered = page.waitForResponse((res) => res.request().method() === 'POST' && res.url().endsWith(`/alerts/${y.id}/acknowledge`));
    await other.locator('button[data-action="acknowledged"]').click();
    assert.equal((await answered).status(), 200);
    await page.waitForFunction((sel) => {
      const li = document.querySelector(sel);
      return li && li.dataset.status === 'acknowledged' && !li.hasAttribute('aria-busy');
    }, rowSel(y.id));
    await waitUntil(async () => (await other.locator('.note-input').inputValue()) === '', { message: 'the sent note to be cleared' });
    const storedY = await vigil.getAlert(await vigil.token('harness-admin', 'admin'), y.id);
    assert.equal(storedY.acknowledgments[0].note, 'on my way');
    assert.deepEqual(page.problems, []);
  } finally {
    await context.close();
  }
});

// ---- 5. Focus and a care-team removal -----------------------------------------------------------

/**
 * A nurse typing a note in a patient's row when she is taken off that patient's care team:
 * the row went, and the keyboard focus with it, to the start of the page (document.body).
 * A screen-reader or keyboard user was lost at the top of the page. The focus goes to the
 * alert list now.
 */
test('a row taken away by a care-team change while it has the focus leaves the focus on the list', async () => {
  await vigil.assignCareTeam('p-r5a', 'fern');
  await vigil.assignCareTeam('p-r5b', 'fern');
  const stays = await vigil.raiseAlert({ patient_id: 'p-r5a', severity: 'high', title: 'Stays on the list' });
  const goes = await vigil.raiseAlert({ patient_id: 'p-r5b', severity: 'high', title: 'Patient she is taken off' });
  const { context, page } = await pageIn(browser, { width: 1100, height: 900 });
  try {
    await signInConsole(page, vigil, await vigil.token('fern', 'nurse'));
    await page.waitForSelector(rowSel(stays.id));
    await page.click(`${rowSel(goes.id)} .note-input`);
    await page.keyboard.type('family informed, waiting');
    await vigil.removeFromCareTeam('p-r5b', 'fern');
    await page.waitForSelector(rowSel(goes.id), { state: 'detached', timeout: 5000 });
    await waitUntil(async () => {
      const focus = await page.evaluate(() => {
        const f = document.activeElement;
        return f ? `${f.tagName.toLowerCase()}${f.id ? `#${f.id}` : ''}` : 'nothing';
      });
      if (focus !== 'ol#alert-list') throw new Error(`the focus is on ${focus}`);
      return true;
    }, { timeout: 3000, message: 'the focus on the alert list after its row was taken away' });
    assert.equal(await page.locator(rowSel(stays.id)).count(), 1);
    assert.deepEqual(page.problems, []);
  } finally {
    await context.close();
  }
});

// ---- 6. Right-to-left text --------------------------------------------------------------------

/**
 * Hebrew (or Arabic) titles, messages and notes were laid out left to right: "סטורציה
 * נמוכה: 82%!" showed its "!" and "82%" on the wrong side, so a saturation could be misread.
 * Each text now takes its own direction (dir="auto"); English text stays left to right.
 */
test('right-to-left titles, messages and notes are shown right to left; English stays left to right', async () => {
  await vigil.assignCareTeam('p-r6', 'hadas');
  await vigil.assignCareTeam('p-r6', 'olga');
  const NOTE = 'הרופא בדרך (5 דקות).';
  const english = await vigil.raiseAlert({ patient_id: 'p-r6', severity: 'high', title: 'Heart rate 148', message: 'HR 148 bpm for 2 min' });
  const hebrew = await vigil.raiseAlert({
    patient_id: 'p-r6', severity: 'high', title: 'סטורציה נמוכה: 82%!', message: '3 ניסיונות החייאה. יש לקרוא לרופא!',
  });
  const r = await vigil.api('POST', `/api/v1/alerts/${hebrew.id}/acknowledge`, {
    token: await vigil.token('olga', 'nurse'), body: { status: 'escalated', note: NOTE },
  });
  assert.equal(r.status, 200);
  const { context, page } = await pageIn(browser, { width: 1100, height: 900 });
  try {
    await signInConsole(page, vigil, await vigil.token('hadas', 'nurse'));
    await page.waitForSelector(`${rowSel(hebrew.id)}[data-status="escalated"]`);
    await page.waitForSelector(rowSel(english.id));
    await page.locator(`${rowSel(hebrew.id)} details.trail summary`).click();
    const directions = await page.evaluate(({ he, en, note }) => {
      const dir = (e) => (e ? getComputedStyle(e).direction : 'missing');
      const row = (id) => document.querySelector(`li.alert-row[data-alert-id="${id}"]`);
      // The trail entry holding the note, or the innermost element around the note in it.
      const entry = [...row(he).querySelectorAll('details.trail li')].find((li) => li.textContent.includes(note));
      let holder = entry;
      if (entry) for (const e of entry.querySelectorAll('*')) if (e.textContent.includes(note)) holder = e;
      return {
        title: dir(row(he).querySelector('.title')),
        message: dir(row(he).querySelector('.message')),
        trailNote: dir(holder),
        englishTitle: dir(row(en).querySelector('.title')),
        englishMessage: dir(row(en).querySelector('.message')),
      };
    }, { he: hebrew.id, en: english.id, note: NOTE });
    assert.deepEqual(directions, { title: 'rtl', message: 'rtl', trailNote: 'rtl', englishTitle: 'ltr', englishMessage: 'ltr' });
    assert.deepEqual(page.problems, []);

    // The legacy dashboard shows the same alerts the same way.
    await connectLegacy(page, vigil, await vigil.token('hadas', 'nurse'));
    await page.waitForSelector(rowSel(hebrew.id));
    await page.waitForSelector(rowSel(english.id));
    const legacy = await page.evaluate(({ he, en }) => {
      const dir = (id, part) => getComputedStyle(document.querySelector(`li.alert-row[data-alert-id="${id}"] ${part}`)).direction;
      return { title: dir(he, '.title'), englishTitle: dir(en, '.title') };
    }, { he: hebrew.id, en: english.id });
    assert.deepEqual(legacy, { title: 'rtl', englishTitle: 'ltr' }, 'the legacy dashboard');
  } finally {
    await context.close();
  }
});

// ---- 7. Relative times ------------------------------------------------------------------------

/**
 * A row's "updated just now" (its meta line) was written once and never again: two hours
 * later it still said "just now" beside a trail saying "2 h ago". And the 20-second refresh
 * of the times rebuilt each audit trail, dropping any text selected in it (a nurse copying a
 * note into the chart lost her selection every 20 s).
 *
 * The page's clock is Playwright's (time flows as usual; fastForward jumps it). The server
 * under this test sends a heartbeat every 120 s, so the page's stream watchdog (two heartbeats
 * plus 5 s) does not take the jump for a silent stream and reconnect in the middle of it.
 */
test('relative times stay current, and a selection in the audit trail survives their refresh', async () => {
  const slow = await Vigil.start('resilience-clock', { VIGIL_HEARTBEAT_SECS: '120' });
  const { context, page } = await pageIn(browser, { width: 1100, height: 900 });
  try {
    await slow.assignCareTeam('p-r7', 'tali');
    await slow.assignCareTeam('p-r7', 'olga');
    await page.clock.install();
    await signInConsole(page, slow, await slow.token('tali', 'nurse'));
    const a = await slow.raiseAlert({ patient_id: 'p-r7', severity: 'high', title: 'BP 190/120', source: 'monitor-12' });
    await page.waitForSelector(rowSel(a.id));
    const r = await slow.api('POST', `/api/v1/alerts/${a.id}/acknowledge`, {
      token: await slow.token('olga', 'nurse'), body: { status: 'acknowledged', note: 'seen, rechecking in 10 min' },
    });
    assert.equal(r.status, 200);
    await page.waitForSelector(`${rowSel(a.id)}[data-status="acknowledged"]`);
    const meta = page.locator(`${rowSel(a.id)} .meta`);
    assert.match(await meta.textContent(), /updated just now/);

    // A selection in the trail (its texts do not change within these 20 s: all "just now").
    await page.locator(`${rowSel(a.id)} details.trail summary`).click();
    const selected = await page.evaluate((sel) => {
      const entry = document.querySelector(`${sel} details.trail li`);
      const range = document.createRange();
      range.selectNodeContents(entry);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      return getSelection().toString();
    }, rowSel(a.id));
    assert.match(selected, /Acknowledged by olga/);
    await page.clock.fastForward(20000);   // one refresh of the times is due
    const kept = await page.evaluate(() => getSelection().toString());
    assert.ok(kept.includes('Acknowledged by olga'), `the selection in the trail survives the refresh of the times: ${JSON.stringify(kept)}`);

    // 125 s after the acknowledgment, "just now" is no longer true.
    await page.clock.fastForward(105000);
    const text = await waitUntil(async () => {
      const m = await meta.textContent();
      if (/just now/.test(m)) throw new Error(`the meta line says "${m}"`);
      return m;
    }, { timeout: 3000, message: 'the row\'s "updated …" time to move on from "just now" after 125 s' });
    assert.match(text, /updated \d+ min ago/);
    assert.equal(await page.getAttribute('#connection-status', 'data-state'), 'live');
    assert.deepEqual(page.problems, []);
  } finally {
    await context.close();
    await slow.dispose();
  }
});
