// Scenario 5: a patient-role user sees only their own alerts, live and after a reload, and
// gets no acknowledge buttons.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Vigil, launchBrowser, newPage, signInConsole, screenshot, rowSel, rowCount,
} from './harness.mjs';

const OWN = 'p-501';
const OTHER = 'p-502';
let vigil;
let browser;

before(async () => {
  vigil = await Vigil.start('patient');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await vigil?.dispose();
});

test('5. a patient sees only their own alerts', async () => {
  // One of each before sign-in (initial list), more while live (stream).
  const otherEarly = await vigil.raiseAlert({ patient_id: OTHER, severity: 'critical', title: 'Someone else: early' });
  const ownEarly = await vigil.raiseAlert({ patient_id: OWN, severity: 'low', title: 'Yours: early' });

  const page = await newPage(browser);
  const token = await vigil.token('patient-501', 'patient', { patient: OWN });
  await signInConsole(page, vigil, token);
  await page.waitForSelector(rowSel(ownEarly.id));

  // Raised in this order: the other patient's first, so once our own one has arrived the
  // stream has already passed the other one (events are delivered in sequence order).
  const otherLive = await vigil.raiseAlert({ patient_id: OTHER, severity: 'critical', title: 'Someone else: live' });
  const ownLive = await vigil.raiseAlert({ patient_id: OWN, severity: 'medium', title: 'Yours: live' });
  await page.waitForSelector(rowSel(ownLive.id), { timeout: 2000 });

  const check = async (when) => {
    assert.equal(await rowCount(page, ownEarly.id), 1, `${when}: own early alert`);
    assert.equal(await rowCount(page, ownLive.id), 1, `${when}: own live alert`);
    assert.equal(await rowCount(page, otherEarly.id), 0, `${when}: other patient's early alert`);
    assert.equal(await rowCount(page, otherLive.id), 0, `${when}: other patient's live alert`);
    const patients = await page.locator('li.alert-row').evaluateAll((lis) => lis.map((li) => li.dataset.patient));
    assert.deepEqual(patients, [OWN, OWN], `${when}: every row is the patient's own`);
    assert.equal(await page.textContent('#open-count'), '2');
    // Patients may not acknowledge: the action bar is hidden.
    for (const a of [ownEarly, ownLive]) {
      assert.equal(await page.locator(`${rowSel(a.id)} .actions`).isVisible(), false, `${when}: actions hidden`);
    }
    assert.equal((await page.textContent('body')).includes('Someone else'), false, `${when}: no trace of the other patient`);
  };
  await check('live');
  await screenshot(page, '5-patient-own-alerts');

  // After a reload the list comes from GET /api/v1/alerts (the session cookie): same scope.
  await page.reload();
  await page.waitForSelector('#connection-status[data-state="live"]');
  await page.waitForSelector(rowSel(ownLive.id));
  await check('after reload');

  // The API agrees: the other patient is out of scope.
  const r = await vigil.api('GET', `/api/v1/alerts?patient_id=${OTHER}`, { token });
  assert.equal(r.status, 403, `GET other patient's alerts: HTTP ${r.status}`);
  assert.deepEqual(page.problems, []);
});
