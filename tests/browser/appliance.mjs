// A real Gatehouse appliance for the browser tests: the built binary, run as an installer
// would (migrate, import the example site, create admins, serve) in a throwaway folder,
// on free loopback ports, and stopped at the end.

import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { chromium } from 'playwright-core';

const run = promisify(execFile);

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BINARY =
  process.env.GATEHOUSE_BIN ??
  path.join(process.env.CARGO_TARGET_DIR ?? path.join(REPO, 'target'), 'debug', 'gatehouse');
export const SCREENSHOTS =
  process.env.GATEHOUSE_SCREENSHOTS ?? path.join(REPO, 'target', 'browser-screenshots');
const CHROMIUM = process.env.GATEHOUSE_CHROMIUM ?? '/usr/bin/chromium';

/** The example site every test runs against, and the admins signed in as. */
export const SITE_FILE = path.join(REPO, 'packaging', 'examples', 'office.toml');
export const ADMINS = {
  admin: { username: 'alice', password: 'alice-browser-test-pw', role: 'admin' },
  operator: { username: 'oscar', password: 'oscar-browser-test-pw', role: 'operator' },
  auditor: { username: 'audrey', password: 'audrey-browser-test-pw', role: 'auditor' },
};

/**
 * A port nobody listens on right now. The appliance cannot be told to take any free port
 * and report it, so one is found here: the socket is closed again before the appliance
 * binds it, and on a busy machine another process could take it in between (then the
 * appliance fails to start and says which port was busy).
 */
async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** This process's environment without GATEHOUSE_* settings, which would override the test's config. */
function cleanEnvironment() {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('GATEHOUSE_')) env[key] = value;
  }
  env.GATEHOUSE_LOG = process.env.GATEHOUSE_LOG ?? 'warn';
  return env;
}

async function waitForHealthy(baseURL, server, log, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (server.exitCode !== null) break;
    try {
      const response = await fetch(`${baseURL}/healthz`);
      if (response.status === 200) return;
      last = `status ${response.status}: ${await response.text()}`;
    } catch (error) {
      last = error.cause?.code ?? error.message;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const tail = (await readFile(log, 'utf8').catch(() => '')).split('\n').slice(-30).join('\n');
  throw new Error(
    server.exitCode !== null
      ? `gatehouse serve exited with ${server.exitCode}:\n${tail}`
      : `GET /healthz did not answer 200 within ${timeoutMs} ms (${last}):\n${tail}`,
  );
}

export class Appliance {
  /**
   * Starts an appliance with the example site and one admin of each role, or with no
   * admin at all (`{ admins: false }`): then `serve` writes the first-admin setup code to
   * `setupCodeFile`, and `api()` cannot be used.
   */
  static async start({ admins = true } = {}) {
    const appliance = new Appliance();
    try {
      await appliance.#start(admins);
    } catch (error) {
      await appliance.stop();
      throw error;
    }
    return appliance;
  }

  #server = null;
  #token = null;

  async #start(withAdmins) {
    this.dir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-browser-'));
    /** Where `serve` writes the one-time setup code while no admin exists. */
    this.setupCodeFile = path.join(this.dir, 'data', 'first-admin-code');
    this.httpPort = await freePort();
    // The embedded broker needs its own port: a Mosquitto on this machine may hold 1883.
    this.mqttPort = await freePort();
    this.baseURL = `http://127.0.0.1:${this.httpPort}`;
    this.config = path.join(this.dir, 'gatehouse.toml');
    await writeFile(
      this.config,
      [
        `data_dir = ${JSON.stringify(path.join(this.dir, 'data'))}`,
        '[http]',
        `listen = "127.0.0.1:${this.httpPort}"`,
        '[mqtt]',
        'broker = "embedded"',
        `listen = "127.0.0.1:${this.mqttPort}"`,
        // Modbus polling stays on: the example site's Modbus readers are on loopback ports,
        // where `simulate` serves stand-in devices (and nothing answers otherwise).
        '',
      ].join('\n'),
    );
    await this.gatehouse(['migrate']);
    await this.gatehouse(['import', SITE_FILE]);
    if (withAdmins) {
      for (const admin of Object.values(ADMINS)) {
        await this.gatehouse(
          ['admin', 'create', admin.username, '--role', admin.role, '--password-stdin'],
          `${admin.password}\n`,
        );
      }
      const issued = await this.gatehouse([
        'admin', 'token', 'create', ADMINS.admin.username, '--name', 'browser tests',
      ]);
      this.#token = issued.trim();
    }

    this.log = path.join(this.dir, 'serve.log');
    const logStream = createWriteStream(this.log);
    this.#server = spawn(BINARY, ['--config', this.config, 'serve'], {
      env: cleanEnvironment(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#server.stdout.pipe(logStream);
    this.#server.stderr.pipe(logStream);
    await waitForHealthy(this.baseURL, this.#server, this.log, 30_000);
  }

  /** Runs a `gatehouse` subcommand on this appliance's config; returns its standard output. */
  async gatehouse(args, stdin) {
    const child = run(BINARY, ['--config', this.config, ...args], {
      env: cleanEnvironment(),
      maxBuffer: 16 << 20,
    });
    if (stdin !== undefined) {
      child.child.stdin.end(stdin);
    } else {
      child.child.stdin.end();
    }
    try {
      return (await child).stdout;
    } catch (error) {
      throw new Error(
        `gatehouse ${args.join(' ')} failed (exit ${error.code}): ${error.stderr || error.message}`,
      );
    }
  }

  /**
   * Presents `card` once at reader `readerId` (`gatehouse simulate --reader --card`) and
   * returns the line it prints, e.g. `floor-3-stair-north-in: denied: inactive, 3.1 ms`.
   */
  async swipe(readerId, card, pin) {
    const args = ['simulate', '--reader', readerId, '--card', card];
    if (pin !== undefined) args.push('--pin', pin);
    return (await this.gatehouse(args)).trim();
  }

  /** A call to the REST API as the admin, for setting up what a test is not about. */
  async api(method, urlPath, body) {
    if (this.#token === null) throw new Error('this appliance was started with no admin');
    const response = await fetch(`${this.baseURL}/api/v1${urlPath}`, {
      method,
      headers: {
        Authorization: `Bearer ${this.#token}`,
        'Content-Type': 'application/json',
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    const json = text ? JSON.parse(text) : null;
    if (!response.ok) {
      throw new Error(`${method} ${urlPath}: ${response.status} ${text}`);
    }
    return json;
  }

  /** The one entity of `collection` whose `field` is exactly `value`. */
  async findOne(collection, query, field, value) {
    const found = await this.api('GET', `/${collection}?q=${encodeURIComponent(query)}`);
    const matches = found.items.filter((item) => item[field] === value);
    if (matches.length !== 1) {
      throw new Error(`${collection}: ${matches.length} with ${field} = ${value}`);
    }
    return matches[0];
  }

  /**
   * The reader hosts of this appliance that are not this machine (127.0.0.0/8, ::1,
   * localhost): an appliance under test may poll nothing else.
   */
  async readerHostsOutsideLoopback() {
    const outside = [];
    for (let offset = 0; ; offset += 1000) {
      const page = await this.api('GET', `/readers?offset=${offset}&limit=1000`);
      for (const reader of page.items) {
        const host = reader.modbus_host;
        if (host && !isLoopbackHost(host)) outside.push(`${reader.reader_id}: ${host}`);
      }
      if (offset + page.items.length >= page.total || page.items.length === 0) return outside;
    }
  }

  async stop() {
    const server = this.#server;
    this.#server = null;
    if (server && server.exitCode === null && server.signalCode === null) {
      const exited = once(server, 'exit');
      server.kill('SIGTERM');
      const timer = setTimeout(() => server.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    if (this.dir && !process.env.GATEHOUSE_KEEP_BROWSER_DATA) {
      await rm(this.dir, { recursive: true, force: true });
    }
  }
}

/** Whether `host` is this machine: an address in 127.0.0.0/8, ::1, or localhost. */
export function isLoopbackHost(host) {
  const bare = host.replace(/^\[|\]$/g, '');
  if (bare.toLowerCase() === 'localhost' || (net.isIPv6(bare) && bare === '::1')) return true;
  return net.isIPv4(bare) && bare.startsWith('127.');
}

/** Headless Chromium from the distribution (playwright-core downloads no browser). */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // This machine's network is closed: without these, Chromium keeps trying to reach
    // Google's services at start and in the background.
    args: [
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
      '--disable-gpu',
      '--no-first-run',
    ],
  });
}

/** Signs in on the console's sign-in page and waits until it has left it. */
export async function login(page, username, password) {
  await page.goto('/login');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await Promise.all([
    page.waitForURL((url) => url.pathname !== '/login'),
    page.getByRole('button', { name: 'Sign in' }).click(),
  ]);
}

/** The sizes screenshots are taken at: a desktop and a tablet held upright. */
export const VIEWPORTS = {
  desktop: { width: 1280, height: 800 },
  tablet: { width: 768, height: 1024 },
};

/** Saves a full-page screenshot as `<name>.png` in the screenshots folder. */
export async function screenshot(page, name) {
  await mkdir(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}
