// The accessibility / UX audit of the two pages (shared ward PC, phone, silent network drop,
// expiring token, screen reader, keyboard). One finding per test, in the audit's order.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Vigil, launchBrowser, newPage, signInConsole, connectLegacy, screenshot, rowSel, waitUntil, startProxy,
  signInHere, pageIn as pageInContext,
} from './harness.mjs';

let vigil;
let browser;

before(async () => {
  vigil = await Vigil.start('audit');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await vigil?.dispose();
});

/** Collects every text the live region `id` is given, in window.__said[id]. */
async function record(page, id) {
  await page.evaluate((rid) => {
    window.__said = window.__said || {};
    const said = (window.__said[rid] = []);
    const region = document.getElementById(rid);
    new MutationObserver(() => { if (region.textContent) said.push(region.textContent); })
      .observe(region, { childList: true, characterData: true, subtree: true });
  }, id);
}

const pageIn = (viewport, init) => pageInContext(browser, viewport, init);

/** Signs in on the console at `base` (a proxy's address, say) with the form. */
async function signInAt(page, base, token) {
  await page.goto(`${base}/`);
  await page.fill('#token-input', token);
  await page.click('#sign-in');
  await page.waitForSelector('#connection-status[data-state="live"]', { timeout: 10000 });
}

// ---- 1. Sign-out leaves nothing of the previous user's patients -------------------------------

test('audit K1: signing out clears the critical toast, the announcements and the browser notifications', async () => {
  await vigil.assignCareTeam('p-k1', 'kay');
  // A stand-in for the system notifications (headless Chromium shows none): records each
  // one the page creates and whether the page closed it.
  const { context, page } = await pageIn({ width: 375, height: 667 }, () => {
    window.__notifications = [];
    window.Notification = class {
      static permission = 'granted';
      static requestPermission() { return Promise.resolve('granted'); }
      constructor(title) { this.title = title; this.closed = false; window.__notifications.push(this); }
      close() { this.closed = true; if (this.onclose) this.onclose(); }
    };
  });
  try {
    await page.clock.install();   // time flows as usual until paused below
    await signInConsole(page, vigil, await vigil.token('kay', 'nurse'));
    await record(page, 'announcer');
    await vigil.raiseAlert({ patient_id: 'p-k1', severity: 'critical', title: 'Mrs Example, bed 4: suicide risk alarm' });
    await page.waitForSelector('.toast');
    await page.waitForFunction(() => window.__said.announcer.length > 0);
    assert.equal(await page.evaluate(() => window.__notifications.length), 1);
    // A second one whose announcement is still being gathered when she signs out: the
    // page's clock stands still from here, so its gathering window (400 ms) cannot end first.
    await page.clock.pauseAt(await page.evaluate(() => Date.now() + 1));
    const later = await vigil.raiseAlert({ patient_id: 'p-k1', severity: 'critical', title: 'Bed 5: gathered, not yet spoken' });
    await page.waitForSelector(rowSel(later.id));
    await page.click('#sign-out');
    await page.waitForSelector('#signin-view', { state: 'visible' });
    assert.equal(await page.locator('.toast').count(), 0, 'no toast on the sign-in screen');
    assert.equal(await page.textContent('#announcer'), '');
    assert.deepEqual(await page.evaluate(() => window.__notifications.map((n) => n.closed)), [true, true]);
    // The announcement that was pending is dropped, not read out on the sign-in screen:
    // a second on the page's clock fires anything still due.
    await page.clock.runFor(1000);
    assert.equal(await page.textContent('#announcer'), '');
    assert.ok(!(await page.evaluate(() => window.__said.announcer.join(' '))).includes('Bed 5'));
    assert.deepEqual(page.problems, []);
  } finally {
    await context.close();
  }
});

test('audit K1: disconnecting the legacy dashboard clears its announcement', async () => {
  await vigil.assignCareTeam('p-k1l', 'kit');
  const legacy = await newPage(browser);
  await connectLegacy(legacy, vigil, await vigil.token('kit', 'nurse'));
  await vigil.raiseAlert({ patient_id: 'p-k1l', severity: 'critical', title: 'Bed 9: announced' });
  await legacy.waitForFunction(() => document.getElementById('announcer').textContent.includes('Bed 9'));
  await legacy.click('#disconnect');
  assert.equal(await legacy.textContent('#announcer'), '');
  assert.deepEqual(legacy.problems, []);
});

// ---- 2. Toasts on a phone ----------------------------------------------------------------------

for (const [kind, title] of [
  ['realistic', 'SpO2 84 %, check airway and oxygen supply'],
  ['190-character', 'Sustained ventricular tachycardia detected, pulse check required, defibrillator to bedside, '.repeat(3).slice(0, 190)],
]) {
  test(`audit K2: on a phone, critical toasts with ${kind} titles leave the actions reachable`, async () => {
    const P = `p-k2-${kind.length}`;
    const user = `kai${kind.length}`;
    await vigil.assignCareTeam(P, user);
    const { context, page } = await pageIn({ width: 375, height: 667 });
    try {
      await signInConsole(page, vigil, await vigil.token(user, 'nurse'));
      const raised = [];
      for (let i = 0; i < 3; i++) raised.push(await vigil.raiseAlert({ patient_id: P, severity: 'critical', title: `Bed ${i}: ${title}` }));
      await page.waitForSelector(rowSel(raised[2].id));
      await page.waitForFunction((t) => [...document.querySelectorAll('.toast p')].some((p) => p.textContent.includes(t)), 'Bed 2:');
      // The new rows' buttons take pointer clicks again (see FRESH_ROW_MS).
      await page.waitForFunction(() => !document.querySelector('li.alert-row.fresh'));
      await screenshot(page, `audit-k2-toasts-phone-${kind.length}`);
      const m = await page.evaluate(() => {
        const toasts = document.getElementById('toasts').getBoundingClientRect();
        const dismiss = [...document.querySelectorAll('.toast button')].map((b) => {
          const r = b.getBoundingClientRect();
          return r.top >= 0 && r.bottom <= innerHeight && document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2) === b;
        });
        return {
          top: toasts.top, height: toasts.height, vh: innerHeight, dismiss,
          header: document.querySelector('header.bar').getBoundingClientRect().bottom,
          room: parseFloat(getComputedStyle(document.querySelector('main')).paddingBottom),
        };
      });
      assert.ok(m.dismiss.length > 0 && m.dismiss.every(Boolean), `every Dismiss on screen and clickable: ${JSON.stringify(m)}`);
      assert.ok(m.height <= 0.4 * m.vh, `the toasts take at most 40% of the screen: ${JSON.stringify(m)}`);
      assert.ok(m.room >= m.vh - m.top, `the list's room below its last row (${m.room} px) clears the toasts (${m.vh - m.top} px)`);
      // Every row's buttons can be brought above the toasts: the top row's, and the last row's
      // with the page scrolled to its end.
      const top = await page.locator('li.alert-row').first().getAttribute('data-alert-id');
      await page.evaluate(() => window.scrollTo(0, 0));
      const toastsTop = m.top;
      const firstActions = await page.locator(`${rowSel(top)} button[data-action="acknowledged"]`).boundingBox();
      if (firstActions.y + firstActions.height > toastsTop) {
        // Under the toasts at first: scrolling brings it into the band between header and toasts.
        assert.ok(toastsTop - m.header >= firstActions.height * 2, `a band of ${toastsTop - m.header} px is left between the header and the toasts`);
      }
      await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
      const last = await page.locator('li.alert-row').last().getAttribute('data-alert-id');
      const lastButtons = await page.locator(`${rowSel(last)} button[data-action]`).evaluateAll((btns) => btns.map((b) => {
        const r = b.getBoundingClientRect();
        return r.bottom <= innerHeight && document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2) === b;
      }));
      assert.ok(lastButtons.every(Boolean), `the last row's buttons clear the toasts at the end of the page: ${lastButtons}`);
      assert.deepEqual(page.problems, []);
    } finally {
      await context.close();
    }
  });
}

// ---- 3. Legacy: a handshake into a dead network is given up -----------------------------------

test('audit K3: after a silent network drop the legacy dashboard gives up a stuck handshake and comes back', async () => {
  await vigil.assignCareTeam('p-k3', 'kim');
  const proxy = await startProxy(vigil.port);
  const legacy = await newPage(browser);
  try {
    await legacy.goto(`${proxy.baseUrl}/legacy`);
    await legacy.fill('#token-input', await vigil.token('kim', 'nurse'));
    await legacy.click('#sign-in');
    await legacy.waitForSelector('#connection-status[data-state="live"]');
    proxy.blackhole();
    const raised = await vigil.raiseAlert({ patient_id: 'p-k3', severity: 'critical', title: 'Raised while the path was stuck' });
    // Silent socket given up (about 7 s here), one attempt 1 s later into the dead path: that
    // attempt is given up after 10 s, not after Chromium's own four minutes.
    await legacy.waitForFunction(() => /No answer from the server within 10 s\. Reconnecting in 2 s/.test(document.getElementById('notice').textContent),
      null, { timeout: 25000 });
    assert.match(await legacy.textContent('#ws-errors'), /timeout: the server did not answer within 10 s/);
    proxy.pass();
    await legacy.waitForSelector('#connection-status[data-state="live"]', { timeout: 10000 });
    await legacy.waitForSelector(`${rowSel(raised.id)}[data-status="open"]`, { timeout: 10000 });
    await screenshot(legacy, 'audit-k3-legacy-back');
    assert.deepEqual(legacy.problems, []);
  } finally {
    await proxy.close();
  }
});

// ---- 4. Console: a silent network drop is said quickly ----------------------------------------

test('audit K4: after a silent network drop the console says "cannot be reached" after one timed-out attempt', async () => {
  await vigil.assignCareTeam('p-k4', 'kurt');
  const proxy = await startProxy(vigil.port);
  const { context, page } = await pageIn({ width: 1100, height: 900 });
  try {
    await signInAt(page, proxy.baseUrl, await vigil.token('kurt', 'nurse'));
    proxy.blackhole();
    // Heartbeat 1 s here: the silent stream is given up after 7 s, the next one does not
    // open within 10 s: about 18 s, where it used to take three such rounds (about 50 s).
    await page.waitForFunction(() => /cannot be reached since \d{1,2}:\d{2}/.test(document.getElementById('mode-note').textContent)
      && !document.getElementById('mode-note').hidden, null, { timeout: 25000 });
    assert.equal(await page.getAttribute('#connection-status', 'data-state'), 'offline');
    await screenshot(page, 'audit-k4-console-unreachable');
    const raised = await vigil.raiseAlert({ patient_id: 'p-k4', severity: 'critical', title: 'Raised during the drop' });
    proxy.pass();
    await page.waitForSelector(`${rowSel(raised.id)}[data-status="open"]`, { timeout: 20000 });
    await page.waitForSelector('#connection-status[data-state="live"]', { timeout: 40000 });
    assert.deepEqual(page.problems, []);
  } finally {
    await context.close();
    await proxy.close();
  }
});

// ---- 5. An expiring token: warned, and the unsent note is kept -------------------------------

test('audit K5: a session about to expire is announced; the note typed when it expires comes back for the same user only', async () => {
  await vigil.assignCareTeam('p-k5', 'nora');
  await vigil.assignCareTeam('p-k5', 'olga');
  await vigil.assignCareTeam('p-k5', 'pete');
  const a = await vigil.raiseAlert({ patient_id: 'p-k5', severity: 'high', title: 'Heart rate 160' });
  const note = 'Pt found on floor, HR 160, called doctor';

  /** Signs `user` in with a 15 s token, types the note, waits for the expiry. */
  async function typeUntilExpired(user) {
    const { context, page } = await pageIn({ width: 375, height: 667 });
    await signInConsole(page, vigil, await vigil.token(user, 'nurse', { ttl: '15s' }));
    await page.waitForSelector('#session-warning', { state: 'visible' });
    assert.match(await page.textContent('#session-warning'), /Your session ends at \d{1,2}:\d{2}/);
    await page.locator(`${rowSel(a.id)} .note-input`).focus();
    await page.keyboard.type(note);
    await page.waitForSelector('#signin-view', { state: 'visible', timeout: 30000 });
    assert.match(await page.textContent('#signin-message'), /session has expired.*note you had not sent is kept/);
    // Her next keys do not land in the token field.
    await page.keyboard.type(' and gave O2');
    assert.equal(await page.inputValue('#token-input'), '');
    return { context, page };
  }

  const [same, other] = await Promise.all([typeUntilExpired('nora'), typeUntilExpired('olga')]);
  try {
    await screenshot(same.page, 'audit-k5-expired');
    // The same user signs in again: her note is back on its alert.
    await signInHere(same.page, await vigil.token('nora', 'nurse'));
    await same.page.waitForSelector(rowSel(a.id));
    assert.equal(await same.page.inputValue(`${rowSel(a.id)} .note-input`), note);
    assert.equal(await same.page.isVisible('#session-warning'), false, 'a 1 h token is not about to expire');
    // Another user at the same PC never sees it, nor does the first user after him.
    await signInHere(other.page, await vigil.token('pete', 'nurse'));
    await other.page.waitForSelector(rowSel(a.id));
    assert.equal(await other.page.inputValue(`${rowSel(a.id)} .note-input`), '');
    await other.page.click('#sign-out');
    await other.page.waitForSelector('#signin-view', { state: 'visible' });
    await signInHere(other.page, await vigil.token('olga', 'nurse'));
    await other.page.waitForSelector(rowSel(a.id));
    assert.equal(await other.page.inputValue(`${rowSel(a.id)} .note-input`), '');
    assert.deepEqual([...same.page.problems, ...other.page.problems], []);
  } finally {
    await same.context.close();
    await other.context.close();
  }
});

// ---- 6. A burst of critical alerts: one short announcement -------------------------------------

test('audit K6: a burst of 15 critical alerts is announced naming five, then "and N more"', async () => {
  await vigil.assignCareTeam('p-k6', 'kate');
  const page = await newPage(browser);
  await signInConsole(page, vigil, await vigil.token('kate', 'nurse'));
  await record(page, 'announcer');
  await Promise.all(Array.from({ length: 15 }, (_, k) => vigil.raiseAlert({ patient_id: 'p-k6', severity: 'critical', title: `Bed ${k}: SpO2 84%, check airway` })));
  const count = (t) => { const m = /^(\d+) critical alerts/.exec(t); return m ? Number(m[1]) : 1; };
  await waitUntil(async () => (await page.evaluate(() => window.__said.announcer)).reduce((n, t) => n + count(t), 0) >= 15,
    { timeout: 8000, message: 'all 15 announced' });
  const said = await page.evaluate(() => window.__said.announcer);
  for (const t of said) {
    assert.ok((t.match(/\(patient p-k6\)|for patient p-k6/g) || []).length <= 5, `at most five named: ${t}`);
    assert.ok(t.length <= 400, `${t.length} characters: ${t}`);
    const n = count(t);
    if (n > 5) assert.match(t, new RegExp(`and ${n - 5} more$`));
  }
  assert.deepEqual(page.problems, []);
});

// ---- 7. Keyboard: a row leaving the filter ---------------------------------------------------

test('audit K7: under the "Open" filter, acknowledging keeps the focus on the row and says it left the filter', async () => {
  await vigil.assignCareTeam('p-k7', 'kira');
  const first = await vigil.raiseAlert({ patient_id: 'p-k7', severity: 'high', title: 'K7 first' });
  const second = await vigil.raiseAlert({ patient_id: 'p-k7', severity: 'high', title: 'K7 second' });
  const page = await newPage(browser);
  await signInConsole(page, vigil, await vigil.token('kira', 'nurse'));
  await record(page, 'polite-announcer');
  await page.selectOption('#filter-status', 'open');
  await page.locator(`${rowSel(second.id)} button[data-action="acknowledged"]`).focus();
  await page.keyboard.press('Enter');
  await page.waitForSelector(`${rowSel(second.id)}[data-status="acknowledged"]`, { state: 'attached' });
  await waitUntil(() => page.evaluate((id) => {
    const f = document.activeElement;
    return f && f.dataset.action === 'acknowledged' && f.closest('.alert-row')?.dataset.alertId === id;
  }, second.id), { timeout: 5000, message: 'focus back on the acknowledge button' });
  assert.ok(await page.isVisible(rowSel(second.id)), 'the row stays while she is on it');
  assert.match(await page.textContent(`${rowSel(second.id)} .row-kept`), /no longer in the filter/);
  await page.waitForFunction(() => window.__said['polite-announcer'].some((t) => /K7 second.*no longer in the filter/.test(t)));
  // She moves on (Tab): the row goes, the focus is where she went.
  for (let i = 0; i < 5 && await page.evaluate((id) => !!document.activeElement.closest(`[data-alert-id="${id}"]`), second.id); i++) {
    await page.keyboard.press('Tab');
  }
  await page.waitForSelector(rowSel(second.id), { state: 'hidden' });
  assert.notEqual(await page.evaluate(() => document.activeElement.tagName), 'BODY');
  assert.ok(await page.isVisible(rowSel(first.id)));
  assert.deepEqual(page.problems, []);
});

test('audit K7: a colleague acknowledging the alert she is writing a note on does not take it away', async () => {
  await vigil.assignCareTeam('p-k7b', 'kora');
  await vigil.assignCareTeam('p-k7b', 'bob');
  const a = await vigil.raiseAlert({ patient_id: 'p-k7b', severity: 'high', title: 'K7 colleague' });
  const page = await newPage(browser);
  await signInConsole(page, vigil, await vigil.token('kora', 'nurse'));
  await page.selectOption('#filter-status', 'open');
  await page.locator(`${rowSel(a.id)} .note-input`).focus();
  await page.keyboard.type('patient pale, sweating');
  const bob = await vigil.token('bob', 'nurse');
  const r = await vigil.api('POST', `/api/v1/alerts/${a.id}/acknowledge`, { token: bob, body: { status: 'acknowledged' } });
  assert.equal(r.status, 200);
  await page.waitForSelector(`${rowSel(a.id)}[data-status="acknowledged"]`);
  await page.keyboard.type(', BP 80/50');
  assert.equal(await page.inputValue(`${rowSel(a.id)} .note-input`), 'patient pale, sweating, BP 80/50');
  assert.ok(await page.isVisible(rowSel(a.id)));
  // Even when she tabs away, an unsent note keeps the row on screen.
  await page.keyboard.press('Tab');
  await page.waitForFunction((id) => !document.querySelector(`li.alert-row[data-alert-id="${id}"] .note-input`).matches(':focus'), a.id);
  await page.evaluate(() => new Promise((r) => setTimeout(r, 0)));
  assert.ok(await page.isVisible(rowSel(a.id)), 'a row with an unsent note is not hidden');
  assert.deepEqual(page.problems, []);
});

// ---- 8. Small accessibility gaps ----------------------------------------------------------------

test('audit K8: long data is keyboard-scrollable on both pages; the offline note is a live region; no heading jump', async () => {
  await vigil.assignCareTeam('p-k8', 'kent');
  const a = await vigil.raiseAlert({ patient_id: 'p-k8', severity: 'medium', title: 'K8 data', data: { trace: 'QRS'.repeat(300) } });
  const token = await vigil.token('kent', 'nurse');
  const page = await newPage(browser);
  await signInConsole(page, vigil, token);
  const legacy = await newPage(browser);
  await connectLegacy(legacy, vigil, token);
  for (const p of [page, legacy]) {
    await p.waitForSelector(rowSel(a.id));
    await p.locator(`${rowSel(a.id)} details summary`).click();
    const pre = p.locator(`${rowSel(a.id)} details pre`);
    // Focusable by its markup (axe's scrollable-region-focusable), not only in browsers that
    // make scrolling boxes focusable on their own.
    assert.equal(await pre.getAttribute('tabindex'), '0');
    await pre.focus();
    assert.ok(await pre.evaluate((el) => document.activeElement === el && el.scrollWidth > el.clientWidth), 'the scrolling box takes the focus');
    await p.keyboard.press('ArrowRight');
    await waitUntil(() => pre.evaluate((el) => el.scrollLeft > 0), { timeout: 2000, message: 'scrolled with the keyboard' });
  }
  // The "cannot be reached since …" note is in a live region that is always there: its
  // appearance and changes are read out.
  assert.ok(await page.evaluate(() => {
    const region = document.getElementById('mode-note').closest('[role="status"], [role="alert"], [aria-live]');
    return !!region && region.getAttribute('aria-live') !== 'off' && !region.closest('[hidden]');
  }), 'the offline note is in a live region');
  const levels = await page.evaluate(() => [...document.querySelectorAll('h1, h2, h3, h4, h5, h6')]
    .filter((h) => !h.closest('[hidden]') && !h.closest('template'))
    .map((h) => Number(h.tagName[1])));
  levels.reduce((prev, l) => { assert.ok(l <= prev + 1, `heading levels ${levels}`); return l; }, 0);
  assert.deepEqual([...page.problems, ...legacy.problems], []);
});
