// `vigil watch`, the terminal client, against a real server: one line per alert, each once;
// with --ack, a short id typed on stdin acknowledges the alert over HTTP.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Vigil, spawnWatch, waitUntil, reEscape, startProxy } from './harness.mjs';

const PATIENT = 'p-700';
let vigil;
const watchers = [];

before(async () => {
  vigil = await Vigil.start('watch');
  await vigil.assignCareTeam(PATIENT, 'frank');
});

after(async () => {
  for (const w of watchers) await w.stop();
  await vigil?.dispose();
});

// The short id is the last 8 characters: the random tail of a UUID v7.
const short = (a) => a.id.slice(-8);
/** The line `vigil watch` prints for a newly raised alert. */
const alertLine = (a) => new RegExp(
  `^#${a.last_seq} ${reEscape(short(a))} ${a.severity.toUpperCase()}\\s+patient=${reEscape(a.patient_id)} ${reEscape(a.title)} \\[open\\]$`,
);

test('watch prints each raised alert exactly once', async () => {
  const token = await vigil.token('frank', 'nurse');
  const w = spawnWatch(vigil, token);
  watchers.push(w);
  const connected = await w.waitForLine(/^connected as /, 10000);
  assert.match(connected, /^connected as frank \(nurse\), patients p-700$/);

  const raised = [];
  for (const [severity, title] of [['critical', 'Heart rate 160'], ['high', 'SpO2 88%'], ['low', 'Battery low on monitor']]) {
    raised.push(await vigil.raiseAlert({ patient_id: PATIENT, severity, title }));
  }
  for (const a of raised) await w.waitForLine(alertLine(a), 5000);

  // Each once. The last one has arrived and events arrive in order, so nothing earlier can
  // still be on its way. (Lines are told apart by seq, short id and title.)
  for (const a of raised) {
    const matching = w.lines.filter((l) => alertLine(a).test(l));
    assert.equal(matching.length, 1, `lines for #${a.last_seq} ${a.title}: ${JSON.stringify(w.lines)}`);
  }
  const alertLines = w.lines.filter((l) => /^(updated )?#\d+ /.test(l));
  assert.equal(alertLines.length, 3, `alert lines: ${JSON.stringify(alertLines)}`);
  // In raise order.
  const idx = raised.map((a) => w.lines.findIndex((l) => alertLine(a).test(l)));
  assert.deepEqual([...idx].sort((x, y) => x - y), idx);
  assert.equal(w.proc.exitCode, null, 'watch is still running');
});

test('watch --ack acknowledges the alert whose short id is typed on stdin', async () => {
  const token = await vigil.token('frank', 'nurse');
  const w = spawnWatch(vigil, token, { patients: [PATIENT], ack: true });
  watchers.push(w);
  await w.waitForLine(/^connected as /, 10000);

  const a = await vigil.raiseAlert({ patient_id: PATIENT, severity: 'critical', title: 'Apnoea 20 s' });
  await w.waitForLine(alertLine(a), 5000);

  w.send(short(a));
  await w.waitForLine(new RegExp(`^ack ok ${reEscape(short(a))} acknowledged$`), 5000);
  // The stream shows the change too.
  await w.waitForLine(new RegExp(`^updated #\\d+ ${reEscape(short(a))} .*\\[acknowledged\\]$`), 5000);

  const stored = await waitUntil(async () => {
    const got = await vigil.getAlert(token, a.id);
    return got.status === 'acknowledged' && got;
  }, { message: 'acknowledged via the API' });
  assert.equal(stored.acknowledgments.at(-1).user_id, 'frank');
  assert.equal(stored.acknowledgments.at(-1).role, 'nurse');

  // An explicit status, and an unknown id, are answered too.
  w.send(`${short(a)} escalated`);
  await w.waitForLine(new RegExp(`^ack ok ${reEscape(short(a))} escalated$`), 5000);
  w.send('zzzzzzzz');
  await w.waitForLine(/^ack failed zzzzzzzz/, 5000);
  assert.equal((await vigil.getAlert(token, a.id)).status, 'escalated');

  // A note after the status, or alone, goes with the acknowledgment (it used to be
  // dropped while "ack ok" was printed, or taken for a status and refused).
  w.send(`${short(a)} escalated  need a doctor now`);
  await w.waitForLine(new RegExp(`^ack ok ${reEscape(short(a))} escalated$`), 5000);
  w.send(`${short(a)} on my way`);
  // (An earlier "ack ok … acknowledged" line is already there: count them.)
  await waitUntil(() => w.lines.filter((l) => l === `ack ok ${short(a)} acknowledged`).length === 2,
    { message: 'the second acknowledgment answered' });
  const acks = (await vigil.getAlert(token, a.id)).acknowledgments.slice(-2);
  assert.deepEqual(acks.map((k) => [k.status, k.note]), [['escalated', 'need a doctor now'], ['acknowledged', 'on my way']]);
});

test('watch --ack: an acknowledgment whose answer was lost, typed again, is recorded once', async () => {
  const proxy = await startProxy(vigil.port);
  try {
    const token = await vigil.token('frank', 'nurse');
    const w = spawnWatch({ baseUrl: proxy.baseUrl }, token, { patients: [PATIENT], ack: true });
    watchers.push(w);
    await w.waitForLine(/^connected as /, 10000);
    const a = await vigil.raiseAlert({ patient_id: PATIENT, severity: 'high', title: 'Answer lost' });
    await w.waitForLine(alertLine(a), 5000);
    // The acknowledgment reaches the server; its answer never reaches watch, whose
    // connection the server's keep-alive timer then closes.
    proxy.muteAnswersToPosts();
    w.send(`${short(a)} on my way`);
    await w.waitForLine(new RegExp(`^ack failed ${reEscape(short(a))}: .*typing the same line again is safe`), 20000);
    proxy.pass();
    w.send(`${short(a)} on my way`);
    await w.waitForLine(new RegExp(`^ack ok ${reEscape(short(a))} acknowledged$`), 5000);
    const got = await vigil.getAlert(token, a.id);
    assert.deepEqual(got.acknowledgments.map((k) => k.note), ['on my way'], 'recorded once');
  } finally {
    await proxy.close();
  }
});

test('watch says when the care team changes, naming only what changed', async () => {
  await vigil.assignCareTeam('p-720', 'hana');
  const w = spawnWatch(vigil, await vigil.token('hana', 'nurse'));
  watchers.push(w);
  await w.waitForLine(/^connected as /, 10000);
  await vigil.assignCareTeam('p-721', 'hana');
  await w.waitForLine(/^care team changed: added p-721 \(patients now p-720,p-721\)$/, 10000);
  // The added patient's unresolved alerts are listed at once (none here).
  await w.waitForLine(/^  unresolved alerts of p-721:$/, 5000);
  await w.waitForLine(/^  none$/, 5000);
  await vigil.removeFromCareTeam('p-720', 'hana');
  await vigil.removeFromCareTeam('p-721', 'hana');
  await w.waitForLine(/^care team changed: removed p-721 \(no patients now: nothing will be shown until you are put on a care team\)$/, 10000);
  assert.equal(w.proc.exitCode, null, 'watch is still running');
});

// Short ids must never make --ack touch another alert than the one shown (UUID v7
// prefixes are timestamps and collide; the tail is random).
test('watch --ack never acknowledges a different alert than the short id printed for it', async () => {
  const token = await vigil.token('frank', 'nurse');
  const w = spawnWatch(vigil, token, { patients: [PATIENT], ack: true });
  watchers.push(w);
  await w.waitForLine(/^connected as /, 10000);

  const first = await vigil.raiseAlert({ patient_id: PATIENT, severity: 'high', title: 'First of two' });
  const second = await vigil.raiseAlert({ patient_id: PATIENT, severity: 'high', title: 'Second of two' });
  await w.waitForLine(alertLine(first), 5000);
  await w.waitForLine(alertLine(second), 5000);

  // The nurse types the short id shown on the line of the *first* alert.
  w.send(short(first));
  const answer = await w.waitForLine(new RegExp(`^ack (ok|failed) ${reEscape(short(first))}\\b`), 5000);
  // Either the first alert is acknowledged, or the ambiguous id is refused; the second
  // alert must never be touched.
  assert.equal((await vigil.getAlert(token, second.id)).status, 'open',
    `typing ${short(first)} (shown for "${first.title}") changed "${second.title}"; watch said: ${answer}`);
  if (answer.startsWith('ack ok')) assert.equal((await vigil.getAlert(token, first.id)).status, 'acknowledged');
});

test('watch resumes after a server restart (Last-Event-ID): nothing repeated, nothing lost', async () => {
  const token = await vigil.token('frank', 'nurse');
  const w = spawnWatch(vigil, token, { patients: [PATIENT] });
  watchers.push(w);
  await w.waitForLine(/^connected as /, 10000);
  const seen = await vigil.raiseAlert({ patient_id: PATIENT, severity: 'medium', title: 'Before the restart' });
  await w.waitForLine(alertLine(seen), 5000);

  const beforeStop = await vigil.raiseAlert({ patient_id: PATIENT, severity: 'high', title: 'Right before the stop' });
  await vigil.stop({ signal: 'SIGTERM' });
  await vigil.restart();
  const after1 = await vigil.raiseAlert({ patient_id: PATIENT, severity: 'critical', title: 'After the restart (1)' });
  const after2 = await vigil.raiseAlert({ patient_id: PATIENT, severity: 'low', title: 'After the restart (2)' });

  await waitUntil(() => w.lines.filter((l) => l.startsWith('connected as ')).length >= 2,
    { timeout: 20000, message: 'watch to reconnect' });
  for (const a of [beforeStop, after1, after2]) await w.waitForLine(alertLine(a), 10000);
  for (const a of [seen, beforeStop, after1, after2]) {
    assert.equal(w.lines.filter((l) => alertLine(a).test(l)).length, 1, `lines for "${a.title}": ${JSON.stringify(w.lines)}`);
  }
  assert.equal(w.lines.some((l) => l.includes('could not replay')), false, `no reset: ${JSON.stringify(w.lines)}`);
  assert.equal(w.proc.exitCode, null, 'watch is still running');
});

// A nurse starting `watch` in the middle of a shift needs the alerts already waiting for
// someone, not only the next one: they are listed first (the resolved one is not), can
// be acknowledged by the short id shown, and the stream then goes on from where the list
// was read — nothing listed is streamed again, nothing raised meanwhile is missed.
test('watch lists the unresolved alerts first, then streams from where the list was read', async () => {
  const patient = 'p-701';
  await vigil.assignCareTeam(patient, 'frank');
  const token = await vigil.token('frank', 'nurse');
  const waiting = await vigil.raiseAlert({ patient_id: patient, severity: 'critical', title: 'Raised before watch started' });
  const done = await vigil.raiseAlert({ patient_id: patient, severity: 'high', title: 'Resolved before watch started' });
  const acknowledge = async (id, status) => {
    const r = await vigil.api('POST', `/api/v1/alerts/${id}/acknowledge`, { token, body: { status } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.alert;
  };
  await acknowledge(done.id, 'resolved');
  const seen = await vigil.raiseAlert({ patient_id: patient, severity: 'medium', title: 'Acknowledged before watch started' });
  const seenNow = await acknowledge(seen.id, 'acknowledged');

  const w = spawnWatch(vigil, token, { patients: [patient], ack: true });
  watchers.push(w);
  await w.waitForLine(/^connected as /, 10000);
  const connectedAt = w.lines.findIndex((l) => l.startsWith('connected as '));
  const listed = w.lines.slice(0, connectedAt);
  assert.equal(listed[0], '2 unresolved alerts, oldest first:', JSON.stringify(w.lines));
  assert.match(listed[1], alertLine(waiting));
  assert.match(listed[2], new RegExp(`^#${seenNow.last_seq} ${reEscape(short(seen))} .*\\[acknowledged\\]$`));
  assert.equal(listed.length, 3, JSON.stringify(w.lines));

  const next = await vigil.raiseAlert({ patient_id: patient, severity: 'low', title: 'Raised after watch started' });
  await w.waitForLine(alertLine(next), 5000);
  w.send(short(waiting));
  await w.waitForLine(new RegExp(`^ack ok ${reEscape(short(waiting))} acknowledged$`), 5000);
  assert.equal((await vigil.getAlert(token, waiting.id)).status, 'acknowledged');
  await w.waitForLine(new RegExp(`^updated #\\d+ ${reEscape(short(waiting))} .*\\[acknowledged\\]$`), 5000);
  // Each listed or streamed once: the alerts before the list are not replayed.
  for (const a of [waiting, seen, next]) {
    assert.equal(w.lines.filter((l) => l.startsWith('#') && l.includes(short(a))).length, 1, JSON.stringify(w.lines));
  }
  assert.equal(w.lines.some((l) => l.includes(short(done))), false, JSON.stringify(w.lines));
});

// The list endpoint answers at most 500 alerts a page: the oldest open critical alert must
// not be lost behind hundreds of routine ones.
test('watch lists every unresolved alert, past one page of 500', async () => {
  const patient = 'p-702';
  await vigil.assignCareTeam(patient, 'frank');
  const oldest = await vigil.raiseAlert({ patient_id: patient, severity: 'critical', title: 'VT, oldest and open' });
  // One producer per batch: the write rate limit is per token `sub` (200/s).
  for (let i = 0; i < 550; i += 50) {
    const svc = await vigil.token(`watch-analyser-${i}`, 'service');
    const answers = await Promise.all(Array.from({ length: 50 }, (_, k) => vigil.api('POST', '/api/v1/alerts', {
      token: svc, body: { patient_id: patient, severity: 'low', kind: 'k', title: `Routine ${i + k}` },
    })));
    assert.deepEqual([...new Set(answers.map((r) => r.status))], [201]);
  }
  const w = spawnWatch(vigil, await vigil.token('frank', 'nurse'), { patients: [patient] });
  watchers.push(w);
  await w.waitForLine(/^connected as /, 10000);
  assert.equal(w.lines[0], '551 unresolved alerts, oldest first:');
  assert.match(w.lines[1], alertLine(oldest));
  assert.equal(new Set(w.lines.filter((l) => l.startsWith('#'))).size, 551);
});
