// Scenarios 1 and 2: the SSE console in a real browser.
//  1. a nurse signs in (paste token, click sign in); an alert raised through the API appears
//     within 2 s;
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

test('1. a nurse signs in and sees an alert raised through the API within 2 s', async () => {
  alice = await newPage(browser);
  await alice.goto(`${vigil.baseUrl}/`);
  await alice.waitForSelector('#signin-view', { state: 'visible' });
  await screenshot(alice, '1-console-sign-in');

  await signInConsole(alice, vigil, await vigil.token('alice', 'nurse'));
  assert.match(await alice.textContent('#who'), /alice \(nurse\)/);
  assert.equal(await alice.textContent('#open-count'), '0');

  const t0 = Date.now();
  alert = await vigil.raiseAlert({
    patient_id: PATIENT, severity: 'critical', title: 'Heart rate 152', message: 'HR 152 bpm for 3 min',
  });
  await alice.waitForSelector(rowSel(alert.id), { timeout: 2000 });
  const elapsed = Date.now() - t0;
  assert.ok(elapsed < 2000, `alert shown after ${elapsed} ms`);

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

test('care team: a change shows the new patient\'s open alerts and drops the old patient\'s, without a reload', async () => {
  assert.ok(alice && alert, 'scenario 1 signed alice in and raised an alert');
  // Raised before alice is on p-303's team: no event of her stream will ever carry it.
  const earlier = await vigil.raiseAlert({ patient_id: 'p-303', severity: 'critical', title: 'Asystole' });
  await alice.evaluate(() => { window.__vigilNoReload = 'still here'; });
  await vigil.assignCareTeam('p-303', 'alice');
  await alice.waitForSelector(`${rowSel(earlier.id)}[data-status="open"]`, { timeout: 5000 });
  await vigil.removeFromCareTeam(PATIENT, 'alice');
  await alice.waitForSelector(rowSel(alert.id), { state: 'detached', timeout: 5000 });
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
