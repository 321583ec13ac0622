// Scenarios 1 and 2: the SSE console in a real browser.
//  1. a nurse signs in (paste token, click sign in); an alert raised through the API appears
//     without a reload;
//  2. she acknowledges it in the page; another nurse on the same care team, in a second
//     browser context, sees the status change without reloading.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Vigil, launchBrowser, newPage, signInConsole, screenshot, rowSel, rowCount, waitUntil,
} from './harness.mjs';

const PATIENT = 'p-101';
let vigil;
let browser;
let alice; // page of nurse alice
let bob;   // page of nurse bob, same care team
let alert; // the alert raised in scenario 1

before(async () => {
  vigil = await Vigil.start('console');
  await vigil.assignCareTeam(PATIENT, 'alice');
  await vigil.assignCareTeam(PATIENT, 'bob');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await vigil?.dispose();
});

test('1. a nurse signs in and sees an alert raised through the API', async () => {
  alice = await newPage(browser);
  await alice.goto(`${vigil.baseUrl}/`);
  await alice.waitForSelector('#signin-view', { state: 'visible' });
  await screenshot(alice, '1-console-sign-in');

  await signInConsole(alice, vigil, await vigil.token('alice', 'nurse'));
  assert.match(await alice.textContent('#who'), /alice \(nurse\)/);
  assert.equal(await alice.textContent('#open-count'), '0');

  alert = await vigil.raiseAlert({
    patient_id: PATIENT, severity: 'critical', title: 'Heart rate 152', message: 'HR 152 bpm for 3 min',
  });
  // Pushed by the stream, without a reload (how fast is for a benchmark, not this test).
  await alice.waitForSelector(rowSel(alert.id));

  const row = alice.locator(rowSel(alert.id));
  assert.equal(await rowCount(alice, alert.id), 1);
  assert.equal(await row.getAttribute('data-status'), 'open');
  assert.match(await row.locator('.title').textContent(), /Heart rate 152/);
  assert.match(await row.locator('.patient').textContent(), new RegExp(PATIENT));
  assert.equal(await alice.textContent('#open-count'), '1');
  await screenshot(alice, '1-console-alert-shown');
  assert.deepEqual(alice.problems, []);
});

test('2. acknowledging in the page reaches a second nurse without a reload', async () => {
  assert.ok(alert, 'scenario 1 raised the alert');
  bob = await newPage(browser);
  await signInConsole(bob, vigil, await vigil.token('bob', 'nurse'));
  await bob.waitForSelector(`${rowSel(alert.id)}[data-status="open"]`);
  // A marker that a reload would wipe: proves bob's page is updated in place.
  await bob.evaluate(() => { window.__vigilNoReload = 'still here'; });

  const row = alice.locator(rowSel(alert.id));
  await row.locator('.note-input').fill('on my way');
  await row.locator('button[data-action="acknowledged"]').click();
  await alice.waitForSelector(`${rowSel(alert.id)}[data-status="acknowledged"]`, { timeout: 5000 });
  await bob.waitForSelector(`${rowSel(alert.id)}[data-status="acknowledged"]`, { timeout: 5000 });

  assert.equal(await bob.evaluate(() => window.__vigilNoReload), 'still here', 'bob\'s page was reloaded');
  assert.equal(await rowCount(bob, alert.id), 1);
  assert.equal(await bob.textContent('#open-count'), '0');
  assert.equal(await alice.textContent('#open-count'), '0');
  assert.equal(await row.locator('.row-error').textContent(), '');
  // The audit trail in bob's row names who acknowledged, with the note.
  assert.match(await bob.locator(`${rowSel(alert.id)} details.trail summary`).textContent(), /Acknowledged by alice \(nurse\)/);

  // And the server stored it: by alice, with her note.
  const stored = await waitUntil(async () => {
    const a = await vigil.getAlert(await vigil.token('bob', 'nurse'), alert.id);
    return a.status === 'acknowledged' && a;
  }, { message: 'acknowledged status via the API' });
  const ack = stored.acknowledgments.at(-1);
  assert.equal(ack.user_id, 'alice');
  assert.equal(ack.role, 'nurse');
  assert.equal(ack.note, 'on my way');

  await screenshot(alice, '2-console-acknowledged-alice');
  await screenshot(bob, '2-console-acknowledged-bob');
  assert.deepEqual(alice.problems, []);
  assert.deepEqual(bob.problems, []);
});

test('an alert whose trail is full says so, not "already resolved", and can still be resolved', async () => {
  const full = await vigil.raiseAlert({ patient_id: PATIENT, severity: 'high', title: 'Trail full' });
  const admin = await vigil.token('harness-admin', 'admin');
  // Ten admins fill it: one user adds at most 20 acknowledgments to an alert.
  const admins = await Promise.all([...Array(10).keys()].map((n) => vigil.token(`trail-admin-${n}`, 'admin')));
  for (let i = 0; i < 200; i += 1) {
    const r = await vigil.api('POST', `/api/v1/alerts/${full.id}/acknowledge`, { token: admins[i % 10], body: { status: 'escalated' } });
    assert.equal(r.status, 200, `acknowledgment ${i}: ${JSON.stringify(r.body)}`);
  }
  const page = await newPage(browser);
  await signInConsole(page, vigil, await vigil.token('alice', 'nurse'));
  const row = page.locator(rowSel(full.id));
  await row.locator('button[data-action="acknowledged"]').click();
  await page.waitForFunction((sel) => document.querySelector(`${sel} .row-error`)?.textContent, rowSel(full.id));
  const error = await row.locator('.row-error').textContent();
  assert.match(error, /200 acknowledgments/);
  assert.doesNotMatch(error, /already resolved/);
  assert.equal(await row.getAttribute('data-status'), 'escalated', 'nothing was recorded');

  // Resolving is refused to a nurse by role, never by the full trail: an admin resolves.
  const resolved = await vigil.api('POST', `/api/v1/alerts/${full.id}/acknowledge`, { token: admin, body: { status: 'resolved' } });
  assert.equal(resolved.status, 200);
  await page.waitForSelector(`${rowSel(full.id)}[data-status="resolved"]`);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('care team: a change shows the new patient\'s open alerts and drops the old patient\'s, without a reload', async () => {
  assert.ok(alice && alert, 'scenario 1 signed alice in and raised an alert');
  // Raised before alice is on p-303's team: no event of her stream will ever carry it.
  const earlier = await vigil.raiseAlert({ patient_id: 'p-303', severity: 'critical', title: 'Asystole' });
  await alice.evaluate(() => { window.__vigilNoReload = 'still here'; });
  await vigil.assignCareTeam('p-303', 'alice');
  await alice.waitForSelector(`${rowSel(earlier.id)}[data-status="open"]`, { timeout: 5000 });
  // Said in words, not only by rows appearing and vanishing.
  await alice.waitForFunction(() => !document.getElementById('scope-note').hidden
    && /now also see patient p-303\.$/.test(document.querySelector('#scope-note span').textContent), null, { timeout: 5000 });
  await vigil.removeFromCareTeam(PATIENT, 'alice');
  await alice.waitForSelector(rowSel(alert.id), { state: 'detached', timeout: 5000 });
  const note = await alice.textContent('#scope-note span');
  assert.match(note, new RegExp(`^Care team changed at .+: you are no longer on the care team of patient ${PATIENT} \\(\\d+ alerts? no longer shown\\)\\.$`), note);
  assert.equal(await alice.getAttribute('#scope-live', 'role'), 'status', 'read out politely');
  await alice.click('#scope-dismiss');
  assert.ok(await alice.isHidden('#scope-note'));
  assert.equal(await alice.evaluate(() => window.__vigilNoReload), 'still here', 'the page was reloaded');
  assert.equal(await rowCount(alice, earlier.id), 1);
  await screenshot(alice, 'care-team-console');
  assert.deepEqual(alice.problems, []);
});

test('sign-in shows every unresolved alert, however many came after it, not only the newest 100', async () => {
  await vigil.assignCareTeam('p-900', 'carol');
  const old = await vigil.raiseAlert({ patient_id: 'p-900', severity: 'critical', title: 'Asystole, still open' });
  for (let i = 0; i < 110; i++) {
    await vigil.raiseAlert({ patient_id: 'p-900', severity: 'info', title: `Routine ${i}` });
  }
  const carol = await newPage(browser);
  await signInConsole(carol, vigil, await vigil.token('carol', 'nurse'));
  await carol.waitForSelector(`${rowSel(old.id)}[data-status="open"]`, { timeout: 5000 });
  assert.equal(await carol.textContent('#open-count'), '111');
  await screenshot(carol, 'sign-in-old-open-alert');
  assert.deepEqual(carol.problems, []);
});

test('bidirectional controls in alert text are shown, never applied (no "HR 148" shown as "HR 841")', async () => {
  await vigil.assignCareTeam('p-777', 'dora');
  const spoof = await vigil.raiseAlert({ patient_id: 'p-777', severity: 'high', title: 'HR \u202E841\u202C bpm', message: 'SpO2 \u2067 98 \u2069' });
  const dora = await newPage(browser);
  await signInConsole(dora, vigil, await vigil.token('dora', 'nurse'));
  await dora.waitForSelector(rowSel(spoof.id));
  const title = await dora.locator(`${rowSel(spoof.id)} .title`).textContent();
  const message = await dora.locator(`${rowSel(spoof.id)} .message`).textContent();
  assert.equal(title, 'HR \uFFFD841\uFFFD bpm');
  assert.equal(message, 'SpO2 \uFFFD 98 \uFFFD');
  // A critical one raised now is also announced: its toast shows the controls, too.
  const critical = await vigil.raiseAlert({ patient_id: 'p-777', severity: 'critical', title: 'HR \u202E841\u202C bpm' });
  await dora.waitForSelector(rowSel(critical.id));
  await dora.waitForSelector('#toasts .toast');
  assert.equal(await dora.textContent('#toasts .toast p'), 'Critical alert for patient p-777: HR \uFFFD841\uFFFD bpm');
  // A burst of them leaves the newest three on screen, not a wall over the list.
  for (let i = 0; i < 5; i++) {
    await vigil.raiseAlert({ patient_id: 'p-777', severity: 'critical', title: `Burst ${i}` });
  }
  await dora.waitForFunction(() => document.querySelector('#toasts .toast:last-child p')?.textContent.endsWith('Burst 4'));
  assert.equal(await dora.locator('#toasts .toast').count(), 3);
  assert.deepEqual(dora.problems, []);
});

test('a keyboard user stays on the row: focus returns to the action button after it answers', async () => {
  await vigil.assignCareTeam('p-888', 'ezra');
  const a = await vigil.raiseAlert({ patient_id: 'p-888', severity: 'high', title: 'BP 190/110' });
  const ezra = await newPage(browser);
  await signInConsole(ezra, vigil, await vigil.token('ezra', 'nurse'));
  const button = ezra.locator(`${rowSel(a.id)} button[data-action="escalated"]`);
  await button.focus();
  await ezra.keyboard.press('Enter');
  await ezra.waitForSelector(`${rowSel(a.id)}[data-status="escalated"]`, { timeout: 5000 });
  await waitUntil(() => ezra.evaluate((id) => {
    const f = document.activeElement;
    return f && f.dataset.action === 'escalated' && f.closest('.alert-row')?.dataset.alertId === id;
  }, a.id), { timeout: 5000, message: 'focus back on the row\'s escalate button' });
  assert.deepEqual(ezra.problems, []);
});

test('every unresolved alert is loaded, past 500 of them, and none is dropped to make room', async () => {
  await vigil.assignCareTeam('p-1201', 'fred');
  await vigil.assignCareTeam('p-1202', 'fred');
  const old = await vigil.raiseAlert({ patient_id: 'p-1202', severity: 'critical', title: 'VT, oldest and open' });
  // One producer per batch: the write rate limit is per token `sub` (200/s).
  for (let i = 0; i < 1200; i += 50) {
    const svc = await vigil.token(`analyser-${i}`, 'service');
    const answers = await Promise.all(Array.from({ length: 50 }, (_, k) => vigil.api('POST', '/api/v1/alerts', {
      token: svc, body: { patient_id: 'p-1201', severity: 'low', kind: 'k', title: `Routine ${i + k}` },
    })));
    assert.deepEqual([...new Set(answers.map((r) => r.status))], [201]);
  }
  const fred = await newPage(browser);
  await signInConsole(fred, vigil, await vigil.token('fred', 'nurse'));
  await fred.waitForSelector(`${rowSel(old.id)}[data-status="open"]`, { timeout: 15000 });
  await fred.waitForFunction(() => document.getElementById('open-count').textContent === '1201', null, { timeout: 15000 });
  assert.equal(await fred.locator('li.alert-row').count(), 1201, 'past the 1,000-row cap: nothing unresolved is dropped');
  assert.deepEqual(fred.problems, []);
});

test('Enter in a note does not acknowledge: the note goes with the action chosen', async () => {
  await vigil.assignCareTeam('p-313', 'gail');
  const a = await vigil.raiseAlert({ patient_id: 'p-313', severity: 'high', title: 'RR 34' });
  const gail = await newPage(browser);
  await signInConsole(gail, vigil, await vigil.token('gail', 'nurse'));
  const row = gail.locator(rowSel(a.id));
  await row.locator('.note-input').fill('Escalating to charge nurse');
  await row.locator('.note-input').press('Enter');
  await row.locator('button[data-action="escalated"]').click();
  await gail.waitForSelector(`${rowSel(a.id)}[data-status="escalated"]`);
  const stored = await vigil.getAlert(await vigil.token('harness-admin', 'admin'), a.id);
  assert.deepEqual(stored.acknowledgments.map((k) => [k.status, k.note]), [['escalated', 'Escalating to charge nurse']]);
  assert.deepEqual(gail.problems, []);
});

test('a burst of critical alerts is announced together, not overwritten in the live region', async () => {
  await vigil.assignCareTeam('p-414', 'hank');
  const hank = await newPage(browser);
  await signInConsole(hank, vigil, await vigil.token('hank', 'nurse'));
  await hank.evaluate(() => {
    window.__spoken = [];
    new MutationObserver(() => {
      const t = document.getElementById('announcer').textContent;
      if (t) window.__spoken.push(t);
    }).observe(document.getElementById('announcer'), { childList: true, characterData: true, subtree: true });
  });
  const titles = ['VF one', 'VF two', 'VF three', 'VF four'];
  await Promise.all(titles.map((title) => vigil.raiseAlert({ patient_id: 'p-414', severity: 'critical', title })));
  await waitUntil(async () => {
    const spoken = (await hank.evaluate(() => window.__spoken)).join(' ');
    return titles.every((t) => spoken.includes(t));
  }, { timeout: 5000, message: 'every critical alert spoken' });
  const spoken = await hank.evaluate(() => window.__spoken);
  assert.ok(spoken.length < titles.length, `gathered, not one announcement each: ${JSON.stringify(spoken)}`);
  assert.match(spoken.join(' '), /\d critical alerts\./);
});

test('on a phone, an alert\'s long data scrolls inside its row: every action button stays on screen', async () => {
  await vigil.assignCareTeam('p-515', 'iris');
  const a = await vigil.raiseAlert({ patient_id: 'p-515', severity: 'medium', title: 'Long data', data: { waveform: 'x'.repeat(400) } });
  const context = await browser.newContext({ viewport: { width: 360, height: 740 } });
  const iris = await context.newPage();
  iris.problems = [];
  await signInConsole(iris, vigil, await vigil.token('iris', 'nurse'));
  await iris.locator(`${rowSel(a.id)} details.trail summary`).click();
  for (const b of await iris.locator(`${rowSel(a.id)} button[data-action]`).all()) {
    const box = await b.boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= 360, `button inside the 360 px viewport: ${JSON.stringify(box)}`);
  }
  await screenshot(iris, 'mobile-details-open');
  await context.close();
});

test('the status filter hides resolved alerts (or shows only one status)', async () => {
  await vigil.assignCareTeam('p-818', 'lena');
  const done = await vigil.raiseAlert({ patient_id: 'p-818', severity: 'low', title: 'Done' });
  const open = await vigil.raiseAlert({ patient_id: 'p-818', severity: 'low', title: 'Still open' });
  const admin = await vigil.token('harness-admin', 'admin');
  const r = await vigil.api('POST', `/api/v1/alerts/${done.id}/acknowledge`, { token: admin, body: { status: 'resolved' } });
  assert.equal(r.status, 200);
  const lena = await newPage(browser);
  await signInConsole(lena, vigil, await vigil.token('lena', 'nurse'));
  await lena.fill('#filter-patient', 'p-818');
  await lena.selectOption('#filter-status', 'unresolved');
  assert.equal(await lena.isVisible(rowSel(done.id)), false, 'resolved: hidden');
  assert.equal(await lena.isVisible(rowSel(open.id)), true, 'open: shown');
  await lena.selectOption('#filter-status', 'resolved');
  assert.equal(await lena.isVisible(rowSel(done.id)), true);
  assert.equal(await lena.isVisible(rowSel(open.id)), false);
  assert.deepEqual(lena.problems, []);
});

test('critical alerts nobody has taken are counted in the header, and one click shows them', async () => {
  await vigil.assignCareTeam('p-919', 'nora');
  const admin = await vigil.token('harness-admin', 'admin');
  const old = await vigil.raiseAlert({ patient_id: 'p-919', severity: 'critical', title: 'Old critical, still open' });
  const taken = await vigil.raiseAlert({ patient_id: 'p-919', severity: 'critical', title: 'Critical someone is on' });
  const ack = await vigil.api('POST', `/api/v1/alerts/${taken.id}/acknowledge`, { token: admin, body: { status: 'acknowledged' } });
  assert.equal(ack.status, 200);
  const newer = [];
  for (let i = 0; i < 3; i++) {
    newer.push(await vigil.raiseAlert({ patient_id: 'p-919', severity: 'high', title: `Newer high ${i}` }));
  }
  const nora = await newPage(browser);
  await signInConsole(nora, vigil, await vigil.token('nora', 'nurse'));
  await nora.fill('#filter-patient', 'p-919');
  await waitUntil(async () => (await nora.textContent('#critical-count')) === '1', { message: 'one critical waiting' });
  assert.equal(await nora.getAttribute('#critical-badge', 'aria-disabled'), 'false');
  assert.match(await nora.getAttribute('#critical-badge', 'class'), /has-critical/);

  // A new critical alert changes the count, not the place of the list under the pointer.
  // A note being typed keeps its (high) row on screen after the filter: it is not counted.
  await nora.fill(`${rowSel(newer[0].id)} .note-input`, 'Checking');
  const listTop = (await nora.locator('#alert-list').boundingBox()).y;
  const fresh = await vigil.raiseAlert({ patient_id: 'p-919', severity: 'critical', title: 'New critical' });
  await nora.waitForSelector(rowSel(fresh.id));
  await waitUntil(async () => (await nora.textContent('#critical-count')) === '2', { message: 'two critical waiting' });
  assert.equal((await nora.locator('#alert-list').boundingBox()).y, listTop, 'the list did not move');

  await nora.click('#critical-badge');
  assert.equal(await nora.inputValue('#filter-patient'), '', 'every patient the count covers');
  assert.equal(await nora.inputValue('#filter-severity'), 'critical');
  assert.equal(await nora.inputValue('#filter-status'), 'unresolved');
  for (const a of [old, taken, fresh]) assert.equal(await nora.isVisible(rowSel(a.id)), true, `${a.title}: shown`);
  for (const a of newer.slice(1)) assert.equal(await nora.isVisible(rowSel(a.id)), false, `${a.title}: hidden`);
  await waitUntil(async () => /Showing 3 unresolved critical alerts/.test(await nora.textContent('#polite-announcer')),
    { message: 'the filter is announced' });
  await screenshot(nora, 'console-critical-badge');

  // The last one taken by a colleague while the button has the keyboard focus: the focus
  // stays on it (a disabled button would drop it to the page's body).
  await nora.focus('#critical-badge');
  for (const a of [old, fresh]) {
    const r = await vigil.api('POST', `/api/v1/alerts/${a.id}/acknowledge`, { token: admin, body: { status: 'resolved' } });
    assert.equal(r.status, 200);
  }
  await waitUntil(async () => (await nora.textContent('#critical-count')) === '0', { message: 'none waiting' });
  assert.equal(await nora.getAttribute('#critical-badge', 'aria-disabled'), 'true');
  assert.equal(await nora.evaluate(() => document.activeElement?.id), 'critical-badge', 'the focus stayed');
  assert.deepEqual(nora.problems, []);
});

// Last: it restarts the server.
test('with the stream blocked but the API answering, the console polls after a few failures', async () => {
  await vigil.assignCareTeam('p-616', 'jill');
  const jill = await newPage(browser);
  await signInConsole(jill, vigil, await vigil.token('jill', 'nurse'));
  await jill.route('**/api/v1/alerts/stream**', (route) => route.abort());
  await vigil.restart();
  // Three failed tries (1 + 2 + 4 s of backoff), then the API is polled every 5 s.
  await jill.waitForSelector('#mode-note:not([hidden])', { timeout: 20000 });
  const a = await vigil.raiseAlert({ patient_id: 'p-616', severity: 'high', title: 'Raised while the stream is blocked' });
  await jill.waitForSelector(`${rowSel(a.id)}[data-status="open"]`, { timeout: 10000 });
  await screenshot(jill, 'console-polling-stream-blocked');

  // Signed out, the header claims neither a connection state nor a count.
  await jill.click('#sign-out');
  await jill.waitForSelector('#signin-view', { state: 'visible' });
  assert.equal(await jill.isVisible('#connection-status'), false);
  assert.equal(await jill.isVisible('#open-badge'), false);
  assert.equal(await jill.isVisible('#critical-badge'), false);
});

test('a tab refused by the per-user stream limit says so, and keeps the list current by polling', async () => {
  const limited = await Vigil.start('console-stream-limit', { VIGIL_MAX_STREAMS_PER_USER: '1' });
  try {
    await limited.assignCareTeam('p-717', 'kim');
    const token = await limited.token('kim', 'nurse');
    const first = await newPage(browser);
    await signInConsole(first, limited, token);
    const second = await newPage(browser);
    await second.goto(`${limited.baseUrl}/`);
    await second.fill('#token-input', token);
    await second.click('#sign-in');
    await second.waitForSelector('#mode-note:not([hidden])', { timeout: 20000 });
    assert.match(await second.textContent('#mode-note'), /too many live streams are open for you/);
    const a = await limited.raiseAlert({ patient_id: 'p-717', severity: 'high', title: 'Seen by polling' });
    await second.waitForSelector(`${rowSel(a.id)}[data-status="open"]`, { timeout: 10000 });
  } finally {
    await limited.dispose();
  }
});
