// Shared harness for the browser and `vigil watch` tests.
//
// It builds nothing: it runs the binary named by VIGIL_BIN (default ../../target/debug/vigil
// relative to this directory). Each `Vigil` is a real `vigil serve` on a free loopback port
// with its own temporary SQLite database, a random HS256 secret and a 1 s heartbeat.
// Tokens are minted by `vigil token`; alerts and care teams go through the HTTP API.

import { spawn, execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, mkdirSync, rmSync, createWriteStream, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '..', '..');
export const VIGIL_BIN = path.resolve(HERE, process.env.VIGIL_BIN || '../../target/debug/vigil');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const SCREENSHOT_DIR = path.join(REPO_ROOT, 'target', 'browser-screenshots');
export const LOG_DIR = path.join(REPO_ROOT, 'target', 'browser-logs');

/** Chromium flags: no GPU, no background traffic to anywhere but the server under test. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released). */
export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

/** Resolves with {code, signal} when the child exits, or {error} if it could not be started. */
function exitOf(proc) {
  return new Promise((resolve) => {
    proc.once('exit', (code, signal) => resolve({ code, signal }));
    proc.once('error', (e) => resolve({ error: e.message }));
  });
}

/** Environment for child processes: ours, minus any Vigil settings leaking in from the shell. */
function cleanEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('VIGIL_') || k === 'DATABASE_URL' || k === 'RUST_LOG') continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/**
 * Polls `fn` until it returns a truthy value (which is returned) or `timeout` ms pass.
 * For state outside the page (API, process output); inside the page use Playwright's waits.
 */
export async function waitUntil(fn, { timeout = 5000, interval = 50, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let lastErr;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${message}${lastErr ? `: ${lastErr.message}` : ''}`);
    }
    await sleep(interval);
  }
}

/** A `vigil serve` process under test. */
export class Vigil {
  /**
   * @param {string} name used for the log file name
   * @param {object} extraEnv settings the harness does not pass itself (VIGIL_WS_MODE, …)
   */
  constructor(name = 'vigil', extraEnv = {}) {
    this.extraEnv = extraEnv;
    this.name = name.replace(/[^A-Za-z0-9_.-]+/g, '-');
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'vigil-browser-'));
    this.dbPath = path.join(this.dir, 'vigil.db');
    this.secret = randomBytes(32).toString('hex');
    this.port = 0;
    this.proc = null;
    this.starts = 0;
    this.tokens = new Map();
    mkdirSync(LOG_DIR, { recursive: true });
    this.logPath = path.join(LOG_DIR, `${this.name}.log`);
    this.log = createWriteStream(this.logPath, { flags: 'w' });
  }

  /** Starts a fresh server (free port, empty database, `extraEnv` on top of the harness's
   *  settings) and waits until it is healthy. */
  static async start(name, extraEnv = {}) {
    const v = new Vigil(name, extraEnv);
    try {
      v.port = await freePort();
      await v.#spawn();
    } catch (e) {
      await v.dispose().catch(() => {});
      throw e;
    }
    return v;
  }

  get baseUrl() {
    return `http://127.0.0.1:${this.port}`;
  }

  async #spawn() {
    this.starts += 1;
    this.log.write(`\n===== start #${this.starts} on port ${this.port} =====\n`);
    const proc = spawn(VIGIL_BIN, ['serve'], {
      env: cleanEnv({
        VIGIL_BIND: `127.0.0.1:${this.port}`,
        DATABASE_URL: `sqlite://${this.dbPath}`,
        VIGIL_JWT_SECRET: this.secret,
        VIGIL_HEARTBEAT_SECS: '1',
        // The legacy page pings every half ping interval and gives a silent socket up after
        // two of those plus 5 s: 2 s here lets a test see that in 7 s rather than 35.
        VIGIL_WS_PING_SECS: '2',
        RUST_LOG: 'info',
        ...this.extraEnv,
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    proc.stdout.pipe(this.log, { end: false });
    proc.stderr.pipe(this.log, { end: false });
    proc.exited = exitOf(proc);
    let exitedEarly = null;
    proc.exited.then((r) => { exitedEarly = r; });
    const died = () => new Error(
      `vigil serve exited during startup (${JSON.stringify(exitedEarly)}); log: ${this.logPath}\n${this.logTail()}`,
    );
    try {
      await waitUntil(async () => {
        if (exitedEarly) throw died();
        const r = await fetch(`${this.baseUrl}/healthz`).catch(() => null);
        return r && r.ok;
      }, { timeout: 20000, interval: 100, message: `/healthz on ${this.baseUrl}` });
    } catch (e) {
      throw exitedEarly ? died() : e;
    }
  }

  /** Last lines of the server log, for failure messages. */
  logTail(lines = 30) {
    try {
      return readFileSync(this.logPath, 'utf8').split('\n').slice(-lines).join('\n');
    } catch (_) {
      return '';
    }
  }

  /** Sends `signal` and waits for the process to exit (SIGKILL after `timeout` ms). */
  async stop({ signal = 'SIGTERM', timeout = 15000 } = {}) {
    const proc = this.proc;
    if (!proc) return null;
    this.proc = null;
    if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) return proc.exited;
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeout);
    const result = await proc.exited;
    clearTimeout(timer);
    this.log.write(`===== stopped: ${JSON.stringify(result)} =====\n`);
    return result;
  }

  /**
   * Freezes the server (SIGSTOP): its sockets stay open but nothing answers, as behind a
   * blackholed network. `thaw()` lets it run on.
   */
  freeze() {
    this.proc?.kill('SIGSTOP');
  }

  /** Undoes `freeze()`. */
  thaw() {
    this.proc?.kill('SIGCONT');
  }

  /** Starts the server again on the same port and database. */
  async restart() {
    if (this.proc) await this.stop();
    await this.#spawn();
  }

  /** Stops the server and removes its temporary directory. */
  async dispose() {
    await this.stop();
    await new Promise((resolve) => this.log.end(resolve));
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Mints a JWT with `vigil token` (cached per sub/role/patient). */
  async token(sub, role, { patient, ttl = '1h' } = {}) {
    const key = `${sub}|${role}|${patient ?? ''}|${ttl}`;
    if (this.tokens.has(key)) return this.tokens.get(key);
    const args = ['token', '--sub', sub, '--role', role, '--ttl', ttl];
    if (patient !== undefined) args.push('--patient', patient);
    const stdout = await new Promise((resolve, reject) => {
      execFile(VIGIL_BIN, args, { env: cleanEnv({ VIGIL_JWT_SECRET: this.secret }) }, (err, out, errOut) => {
        if (err) reject(new Error(`vigil ${args.join(' ')} failed: ${err.message}\n${errOut}`));
        else resolve(out);
      });
    });
    const token = stdout.trim();
    if (token.split('.').length !== 3) throw new Error(`vigil token printed no JWT: ${JSON.stringify(stdout)}`);
    this.tokens.set(key, token);
    return token;
  }

  /** One HTTP call to the API with a bearer token; returns {status, body, headers}. */
  async api(method, urlPath, { token, body, headers = {} } = {}) {
    const h = { Accept: 'application/json', ...headers };
    if (token) h.Authorization = `Bearer ${token}`;
    if (body !== undefined) h['Content-Type'] = 'application/json';
    const res = await fetch(`${this.baseUrl}${urlPath}`, {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch (_) { parsed = text; }
    return { status: res.status, body: parsed, headers: res.headers };
  }

  /** Puts `userId` on `patientId`'s care team (as an admin). */
  async assignCareTeam(patientId, userId) {
    const admin = await this.token('harness-admin', 'admin');
    const r = await this.api('PUT', `/api/v1/patients/${encodeURIComponent(patientId)}/care-team/${encodeURIComponent(userId)}`, { token: admin });
    if (r.status !== 200 && r.status !== 201) {
      throw new Error(`care-team PUT ${patientId}/${userId}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    }
    return r.body;
  }

  /** Takes `userId` off `patientId`'s care team (as an admin). */
  async removeFromCareTeam(patientId, userId) {
    const admin = await this.token('harness-admin', 'admin');
    const r = await this.api('DELETE', `/api/v1/patients/${encodeURIComponent(patientId)}/care-team/${encodeURIComponent(userId)}`, { token: admin });
    if (r.status !== 204) {
      throw new Error(`care-team DELETE ${patientId}/${userId}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    }
  }

  /** Raises an alert as a service; returns the created alert JSON. */
  async raiseAlert(fields = {}) {
    const svc = await this.token('vitals-analyser', 'service');
    const body = {
      patient_id: 'p-100',
      severity: 'high',
      kind: 'heart_rate_high',
      title: 'Heart rate 148',
      message: 'HR 148 bpm for 2 min',
      ...fields,
    };
    const r = await this.api('POST', '/api/v1/alerts', { token: svc, body });
    if (r.status !== 201) throw new Error(`POST /api/v1/alerts: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  /** GET /api/v1/alerts/{id} with the given token; returns the alert (throws unless 200). */
  async getAlert(token, id) {
    const r = await this.api('GET', `/api/v1/alerts/${encodeURIComponent(id)}`, { token });
    if (r.status !== 200) throw new Error(`GET alert ${id}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }
}

// ---- A network path that can go silent ---------------------------------------

/**
 * A TCP proxy on a free loopback port in front of `targetPort`, for a page to reach the
 * server through. `blackhole()` makes the path silent, as a dropped network or a stuck proxy
 * does: what is sent either way on the open connections is dropped, and new connections are
 * accepted but never answered (they stay stuck for good, even after `pass()`). `pass()` lets
 * traffic through again. Nothing is ever closed by the proxy in those modes: no event tells
 * the page. `refuse()` is a server gone: open connections are reset, new ones too.
 * `muteAnswersToPosts()` lets every request through but drops what the server answers on a
 * connection once it has carried a POST (a write that landed, its answer lost); streams
 * and other requests flow as in `pass()`. A connection muted so stays muted.
 */
export async function startProxy(targetPort) {
  const port = await freePort();
  let mode = 'pass';
  const sockets = new Set();
  const track = (sock) => { sockets.add(sock); sock.on('close', () => sockets.delete(sock)); sock.on('error', () => {}); };
  const server = net.createServer((client) => {
    track(client);
    if (mode === 'refuse') { client.destroy(); return; }
    if (mode === 'blackhole') return;                 // accepted, never answered
    const upstream = net.connect(targetPort, '127.0.0.1');
    track(upstream);
    let muted = false;
    const flowing = () => mode === 'pass' || mode === 'mute-posts';
    client.on('data', (d) => {
      if (mode === 'mute-posts' && d.subarray(0, 5).toString('latin1') === 'POST ') muted = true;
      if (flowing()) upstream.write(d);
    });
    upstream.on('data', (d) => { if (flowing() && !muted) client.write(d); });
    const end = () => { client.destroy(); upstream.destroy(); };
    client.on('close', end);
    upstream.on('close', end);
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return {
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    blackhole() { mode = 'blackhole'; },
    pass() { mode = 'pass'; },
    muteAnswersToPosts() { mode = 'mute-posts'; },
    refuse() { mode = 'refuse'; for (const sock of sockets) sock.destroy(); },
    async close() {
      for (const sock of sockets) sock.destroy();
      server.close();
      await once(server, 'close').catch(() => {});
    },
  };
}

// ---- Browser ---------------------------------------------------------------

/** Launches Debian's Chromium (never a downloaded one) through playwright-core. */
export async function launchBrowser() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 60000,
  });
}

/** Saves a full-page screenshot as target/browser-screenshots/<name>.png; returns the path. */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * A new browser context (fresh cookies and storage) with one page, whose console errors and
 * uncaught exceptions are collected in `page.problems` for the test to check.
 */
export async function newPage(browser) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
  page.setDefaultTimeout(10000);
  return page;
}

/** CSS selector for the row of one alert. */
export const rowSel = (id) => `li.alert-row[data-alert-id="${id}"]`;

/** Opens the SSE console, pastes the token, signs in and waits until the stream is live. */
export async function signInConsole(page, vigil, token) {
  await page.goto(`${vigil.baseUrl}/`);
  await page.waitForSelector('#token-input', { state: 'visible' });
  await page.fill('#token-input', token);
  await page.click('#sign-in');
  await page.waitForSelector('#console-view', { state: 'visible' });
  await page.waitForSelector('#connection-status[data-state="live"]', { timeout: 10000 });
}

/** Signs in with the form of the console already open (the page is not reloaded). */
export async function signInHere(page, token) {
  await page.waitForSelector('#token-input', { state: 'visible' });
  await page.fill('#token-input', token);
  await page.click('#sign-in');
  await page.waitForSelector('#connection-status[data-state="live"]', { timeout: 10000 });
}

/** A page in a browser context of its own (cookies, viewport, init script), problems collected. */
export async function pageIn(browser, viewport, init) {
  const context = await browser.newContext({ viewport });
  if (init) await context.addInitScript(init);
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
  page.setDefaultTimeout(10000);
  return { context, page };
}

/** Opens the legacy WebSocket dashboard, pastes the token, connects, waits until live. */
export async function connectLegacy(page, vigil, token) {
  await page.goto(`${vigil.baseUrl}/legacy`);
  await page.waitForSelector('#token-input', { state: 'visible' });
  await page.fill('#token-input', token);
  await page.click('#sign-in');
  await page.waitForSelector('#connection-status[data-state="live"]', { timeout: 10000 });
}

/** Number of rows showing one alert (must be exactly 1 where the alert is shown). */
export async function rowCount(page, id) {
  return page.locator(rowSel(id)).count();
}

// ---- `vigil watch` -------------------------------------------------------------

/**
 * Spawns `vigil watch` and collects its stdout lines. `waitForLine(re)` resolves with the first
 * line (seen so far or later) matching `re`.
 */
export function spawnWatch(vigil, token, { patients = [], ack = false } = {}) {
  const args = ['watch', '--url', vigil.baseUrl, '--token', token, '--no-color'];
  for (const p of patients) args.push('--patient', p);
  if (ack) args.push('--ack');
  const proc = spawn(VIGIL_BIN, args, { env: cleanEnv({}), stdio: ['pipe', 'pipe', 'pipe'] });
  const lines = [];
  const stderr = [];
  const waiters = new Set();
  let buf = '';
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (chunk) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).replace(/\r$/, '');
      buf = buf.slice(i + 1);
      lines.push(line);
      for (const w of waiters) if (w.re.test(line)) { waiters.delete(w); w.resolve(line); }
    }
  });
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk) => stderr.push(chunk));
  proc.exited = exitOf(proc);
  proc.exited.then((r) => {
    for (const w of waiters) w.reject(new Error(`vigil watch exited (${JSON.stringify(r)}) before printing ${w.re}; stderr: ${stderr.join('')}`));
    waiters.clear();
  });

  return {
    proc,
    lines,
    stderr,
    waitForLine(re, timeout = 5000) {
      const seen = lines.find((l) => re.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const w = { re, resolve, reject };
        waiters.add(w);
        setTimeout(() => {
          if (waiters.delete(w)) {
            reject(new Error(`vigil watch printed no line matching ${re} within ${timeout} ms; stdout:\n${lines.join('\n')}\nstderr:\n${stderr.join('')}`));
          }
        }, timeout).unref();
      });
    },
    send(line) {
      proc.stdin.write(`${line}\n`);
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await proc.exited;
      clearTimeout(t);
    },
  };
}

/** Escapes a string for use inside a RegExp. */
export const reEscape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
