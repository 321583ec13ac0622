// The second usability audit (N): a shared ward PC and a phone held sideways. What one user
// leaves behind must never hide, show or act for the next one. One finding per test.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Vigil, launchBrowser, newPage, signInConsole, connectLegacy, rowSel, startProxy,
  signInHere, pageIn as pageInContext, waitUntil,
} from './harness.mjs';

let vigil;
let browser;

before(async () => {
  vigil = await Vigil.start('shared-pc');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await vigil?.dispose();
});

const pageIn = (viewport) => pageInContext(browser, viewport);

test('audit N1: the previous user\'s filters are gone at the next sign-in: her alerts are not hidden', async () => {
  await vigil.assignCareTeam('p-n1a', 'ada');
  await vigil.assignCareTeam('p-n1b', 'ben');
  const { context, page } = await pageIn({ width: 1100, height: 900 });
  try {
    await signInConsole(page, vigil, await vigil.token('ada', 'nurse'));
    await page.fill('#filter-patient', 'p-n1a');
    await page.selectOption('#filter-status', 'open');
    await page.selectOption('#filter-severity', 'high');
    await page.click('#sign-out');
    await signInHere(page, await vigil.token('ben', 'nurse'));
    const a = await vigil.raiseAlert({ patient_id: 'p-n1b', severity: 'critical', title: 'Ben\'s patient' });
    await page.waitForSelector(rowSel(a.id), { state: 'visible' });
    assert.deepEqual(
      await page.evaluate(() => ['filter-patient', 'filter-status', 'filter-severity'].map((id) => document.getElementById(id).value)),
      ['', '', ''],
    );
    assert.deepEqual(page.problems, []);
  } finally {
    await context.close();
  }
});

test('audit N2: a sign-out the server could not hear opens no session from its cookie later', async () => {
  await vigil.assignCareTeam('p-n2', 'cal');
  const proxy = await startProxy(vigil.port);
  const { context, page } = await pageIn({ width: 1100, height: 900 });
  try {
    await page.goto(`${proxy.baseUrl}/`);
    await signInHere(page, await vigil.token('cal', 'nurse'));
    proxy.refuse();
    await page.click('#sign-out');
    await page.waitForSelector('#signin-view', { state: 'visible' });
    assert.match(await page.textContent('#signin-message'), /could not be reached/);
    proxy.pass();
    // The next person opens the console on this PC: the sign-in form, not cal's session.
    const next = await context.newPage();
    await next.goto(`${proxy.baseUrl}/`);
    await next.waitForSelector('#signin-view', { state: 'visible' });
    assert.ok(await next.isHidden('#console-view'), 'cal\'s session was opened from the cookie');
    // The cookie has been cleared meanwhile: even without the flag, nothing opens.
    await next.evaluate(() => localStorage.clear());
    await next.reload();
    await next.waitForSelector('#signin-view', { state: 'visible' });
    assert.ok(await next.isHidden('#console-view'));
    assert.deepEqual([...page.problems], []);
  } finally {
    await context.close();
    await proxy.close();
  }
});

test('audit N3: a list still loading for the previous user never lands in the next user\'s list', async () => {
  await vigil.assignCareTeam('p-n3a', 'dee');
  await vigil.assignCareTeam('p-n3b', 'eli');
  const hers = await vigil.raiseAlert({ patient_id: 'p-n3a', severity: 'high', title: 'Dee\'s patient only' });
  const { context, page } = await pageIn({ width: 1100, height: 900 });
  try {
    await page.goto(`${vigil.baseUrl}/`);
    // Dee's first list load is slow; she signs out before it answers, and Eli signs in.
    let slowed = null;   // Dee's request, once held
    let release;
    const held = new Promise((r) => { release = r; });
    await page.route((url) => url.pathname === '/api/v1/alerts' && url.search === '?limit=100', async (route) => {
      if (slowed) return route.continue();
      slowed = route.request();
      const response = await route.fetch();   // answered for Dee, slow to arrive
      await held;
      return route.fulfill({ response });
    });
    await page.fill('#token-input', await vigil.token('dee', 'nurse'));
    await page.click('#sign-in');
    await page.waitForSelector('#console-view', { state: 'visible' });
    await page.click('#sign-out');
    await signInHere(page, await vigil.token('eli', 'nurse'));
    const his = await vigil.raiseAlert({ patient_id: 'p-n3b', severity: 'high', title: 'Eli\'s patient' });
    await page.waitForSelector(rowSel(his.id));
    assert.ok(slowed, 'Dee\'s first list load was held');
    // Dee's answer arrives now: once it has been read in full (and a frame later, so
    // whatever the page does with it has been done), her alert must still be absent.
    const delivered = Promise.race([
      page.waitForEvent('requestfinished', { predicate: (r) => r === slowed, timeout: 10000 }).then(() => 'finished'),
      page.waitForEvent('requestfailed', { predicate: (r) => r === slowed, timeout: 10000 }).then((r) => `failed: ${r.failure()?.errorText}`),
    ]);
    release();
    assert.equal(await delivered, 'finished', 'Dee\'s held answer reached the page');
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0))));
    assert.equal(await page.locator(rowSel(hers.id)).count(), 0, 'Dee\'s alert in Eli\'s list');
    assert.deepEqual(page.problems, []);
  } finally {
    await context.close();
  }
});

test('audit N4: signing in through a #token= link clears the previous user\'s toasts and care-team note', async () => {
  await vigil.assignCareTeam('p-n4a', 'fox');
  await vigil.assignCareTeam('p-n4b', 'gil');
  const { context, page } = await pageIn({ width: 1100, height: 900 });
  try {
    await signInConsole(page, vigil, await vigil.token('fox', 'nurse'));
    await vigil.raiseAlert({ patient_id: 'p-n4a', severity: 'critical', title: 'Fox\'s patient, critical' });
    await page.waitForSelector('.toast');
    await vigil.assignCareTeam('p-n4c', 'fox');
    await page.waitForSelector('#scope-note', { state: 'visible' });
    const gil = await vigil.token('gil', 'nurse');
    await page.evaluate((t) => { location.hash = `token=${t}`; }, gil);
    // A link for another user than fox is asked about first (outside-audit.test.mjs): Switch.
    await page.click('#link-switch');
    await page.waitForFunction(() => /gil/.test(document.getElementById('who')?.textContent || document.body.textContent));
    await page.waitForSelector('#connection-status[data-state="live"]');
    assert.equal(await page.locator('.toast').count(), 0, 'fox\'s toast still shown');
    assert.ok(await page.isHidden('#scope-note'), 'fox\'s care-team note still shown');
    assert.equal(await page.textContent('#announcer'), '');
    assert.deepEqual(page.problems, []);
  } finally {
    await context.close();
  }
});

test('audit N5: on a phone held sideways one toast at most: the actions stay reachable', async () => {
  await vigil.assignCareTeam('p-n5', 'hal');
  const { context, page } = await pageIn({ width: 640, height: 360 });
  try {
    await signInConsole(page, vigil, await vigil.token('hal', 'nurse'));
    const raised = [];
    for (let i = 0; i < 3; i++) raised.push(await vigil.raiseAlert({ patient_id: 'p-n5', severity: 'critical', title: `Bed ${i}: SpO2 82 %` }));
    await page.waitForSelector(rowSel(raised[2].id));
    await page.waitForFunction(() => [...document.querySelectorAll('.toast p')].some((p) => p.textContent.includes('Bed 2:')));
    assert.equal(await page.locator('.toast').count(), 1);
    await page.waitForFunction(() => !document.querySelector('li.alert-row.fresh'));
    // Some row's actions can be brought clear of the toast and the header and clicked.
    const reachable = await page.evaluate(() => {
      const header = document.querySelector('header.bar').getBoundingClientRect().bottom;
      const toastTop = document.getElementById('toasts').getBoundingClientRect().top;
      return toastTop - header;
    });
    assert.ok(reachable >= 80, `a band of ${reachable} px between the header and the toast`);
    assert.deepEqual(page.problems, []);
  } finally {
    await context.close();
  }
});

test('audit N6: a removal then an addition at once: the note says both, and Dismiss by keyboard keeps focus', async () => {
  await vigil.assignCareTeam('p-n6a', 'ivy');
  const { context, page } = await pageIn({ width: 1100, height: 900 });
  try {
    await signInConsole(page, vigil, await vigil.token('ivy', 'nurse'));
    await vigil.raiseAlert({ patient_id: 'p-n6a', severity: 'critical', title: 'Ivy\'s first patient' });
    await page.waitForSelector('.toast');
    await vigil.removeFromCareTeam('p-n6a', 'ivy');
    await vigil.assignCareTeam('p-n6b', 'ivy');
    await page.waitForFunction(() => /now also see patient p-n6b/.test(document.querySelector('#scope-note span').textContent));
    assert.match(await page.textContent('#scope-note span'), /no longer on the care team of patient p-n6a \(1 alert no longer shown\)/);
    await page.focus('.toast button');
    await page.keyboard.press('Enter');
    assert.equal(await page.locator('.toast').count(), 0);
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'alert-list', 'focus fell to the page');
    assert.deepEqual(page.problems, []);
  } finally {
    await context.close();
  }
});

test('audit N7: disconnecting the legacy dashboard forgets the session: list, note, user, patients, errors', async () => {
  await vigil.assignCareTeam('p-n7', 'joy');
  const legacy = await newPage(browser);
  await connectLegacy(legacy, vigil, await vigil.token('joy', 'nurse'));
  const a = await vigil.raiseAlert({ patient_id: 'p-n7', severity: 'high', title: 'Joy\'s patient' });
  await legacy.waitForSelector(rowSel(a.id));
  await legacy.fill(`${rowSel(a.id)} .note-input`, 'private note');
  await legacy.fill('#patient-ids', 'p-elsewhere');
  await legacy.click('#subscribe');
  await legacy.waitForFunction(() => document.getElementById('ws-errors').children.length > 0);
  await legacy.click('#disconnect');
  const left = await legacy.evaluate(() => ({
    rows: document.querySelectorAll('li.alert-row').length,
    who: document.getElementById('who').textContent,
    ids: document.getElementById('patient-ids').value,
    errors: document.getElementById('ws-errors').children.length,
    open: document.getElementById('open-count').textContent,
  }));
  assert.deepEqual(left, { rows: 0, who: '', ids: '', errors: 0, open: '0' });
  assert.deepEqual(legacy.problems, []);
});

test('audit N11: past the 1,000-row cap, a resolved row the nurse is typing in is not the one dropped', async () => {
  await vigil.assignCareTeam('p-n11', 'kim');
  const typed = await vigil.raiseAlert({ patient_id: 'p-n11', severity: 'high', title: 'SpO2 86, oldest' });
  // One producer per batch: the write rate limit is per token `sub` (200/s).
  for (let i = 0; i < 1000; i += 50) {
    const svc = await vigil.token(`n11-analyser-${i}`, 'service');
    const answers = await Promise.all(Array.from({ length: 50 }, (_, k) => vigil.api('POST', '/api/v1/alerts', {
      token: svc, body: { patient_id: 'p-n11', severity: 'low', kind: 'k', title: `Routine ${i + k}` },
    })));
    assert.deepEqual([...new Set(answers.map((r) => r.status))], [201]);
  }
  const page = await newPage(browser);
  await signInConsole(page, vigil, await vigil.token('kim', 'nurse'));
  await page.waitForFunction(() => document.querySelectorAll('li.alert-row').length === 1001, null, { timeout: 15000 });
  const note = page.locator(`${rowSel(typed.id)} .note-input`);
  await note.fill('Sats back to 94 on 2 L');
  await note.focus();
  // A colleague resolves it while Kim types; then one more alert arrives, past the cap.
  const colleague = await vigil.token('lou', 'admin');
  const resolved = await vigil.api('POST', `/api/v1/alerts/${typed.id}/acknowledge`, { token: colleague, body: { status: 'resolved' } });
  assert.equal(resolved.status, 200);
  await page.waitForSelector(`${rowSel(typed.id)}[data-status="resolved"]`);
  const next = await vigil.raiseAlert({ patient_id: 'p-n11', severity: 'low', title: 'One more' });
  await page.waitForSelector(rowSel(next.id));
  assert.equal(await page.locator(rowSel(typed.id)).count(), 1, 'the row in use was dropped');
  assert.equal(await note.inputValue(), 'Sats back to 94 on 2 L');
  assert.ok(await page.evaluate((id) => document.activeElement?.closest('.alert-row')?.dataset.alertId === id, typed.id),
    'the focus left the note');
  assert.deepEqual(page.problems, []);
});

test('audit N12: an action without an answer keeps its warning when the stream comes back', async () => {
  await vigil.assignCareTeam('p-n12', 'max');
  const proxy = await startProxy(vigil.port);
  const { context, page } = await pageIn({ width: 1100, height: 900 });
  try {
    await page.goto(`${proxy.baseUrl}/`);
    await signInHere(page, await vigil.token('max', 'nurse'));
    const slow = await vigil.raiseAlert({ patient_id: 'p-n12', severity: 'high', title: 'No answer to this one' });
    const refused = await vigil.raiseAlert({ patient_id: 'p-n12', severity: 'high', title: 'Server gone for this one' });
    await page.waitForSelector(rowSel(slow.id));
    await page.waitForSelector(rowSel(refused.id));
    proxy.blackhole();
    await page.click(`${rowSel(slow.id)} button[data-action="acknowledged"]`);
    await page.waitForFunction((sel) => /No answer within 10 s/.test(document.querySelector(sel).textContent),
      `${rowSel(slow.id)} .row-error`, { timeout: 20000 });
    proxy.refuse();
    await page.click(`${rowSel(refused.id)} button[data-action="acknowledged"]`);
    await page.waitForFunction((sel) => /could not be reached, or the connection broke/.test(document.querySelector(sel).textContent),
      `${rowSel(refused.id)} .row-error`, { timeout: 10000 });
    proxy.pass();
    await page.waitForSelector('#connection-status[data-state="live"]', { timeout: 30000 });
    // A refused connection may look so to the page, but so does one that broke after the
    // request went out: neither warning goes, both say the row is current now.
    for (const a of [slow, refused]) {
      assert.match(await page.textContent(`${rowSel(a.id)} .row-error`), /connection is back.*check it for yours\. Trying the same action again is safe/);
    }
    assert.deepEqual([...page.problems], []);
  } finally {
    await context.close();
    await proxy.close();
  }
});

test('an acknowledgment that got no answer, tried again, is recorded once', async () => {
  await vigil.assignCareTeam('p-n13', 'ria');
  const proxy = await startProxy(vigil.port);
  const { context, page } = await pageIn({ width: 1100, height: 900 });
  try {
    await page.goto(`${proxy.baseUrl}/`);
    await signInHere(page, await vigil.token('ria', 'nurse'));
    const a = await vigil.raiseAlert({ patient_id: 'p-n13', severity: 'high', title: 'Answer lost' });
    await page.waitForSelector(rowSel(a.id));
    await page.fill(`${rowSel(a.id)} .note-input`, 'On my way');
    // The acknowledgment reaches the server; its answer does not reach the page.
    proxy.muteAnswersToPosts();
    await page.click(`${rowSel(a.id)} button[data-action="acknowledged"]`);
    // A timeout, or the connection closed by the server's keep-alive timer through the proxy.
    await page.waitForFunction((sel) => /may or may not have been recorded/.test(document.querySelector(sel).textContent),
      `${rowSel(a.id)} .row-error`, { timeout: 20000 });
    proxy.pass();
    await page.click(`${rowSel(a.id)} button[data-action="acknowledged"]`);
    await page.waitForSelector(`${rowSel(a.id)}[data-status="acknowledged"]`);
    await waitUntil(async () => (await page.textContent(`${rowSel(a.id)} .row-error`)) === '', { message: 'the warning went' });
    const admin = await vigil.token('harness-admin', 'admin');
    const r = await vigil.api('GET', `/api/v1/alerts/${a.id}`, { token: admin });
    assert.equal(r.status, 200);
    assert.equal(r.body.acknowledgments.length, 1, `recorded once: ${JSON.stringify(r.body.acknowledgments)}`);
    assert.equal(r.body.acknowledgments[0].note, 'On my way');
    assert.deepEqual([...page.problems], []);
  } finally {
    await context.close();
    await proxy.close();
  }
});
