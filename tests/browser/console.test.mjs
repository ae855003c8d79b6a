// The web console's main flows in headless Chromium, against a real appliance running the
// example site (packaging/examples/office.toml). Locators are the accessible names and
// roles of the console's page contract (README.md in this folder).

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';

import {
  ADMINS,
  Appliance,
  VIEWPORTS,
  launchBrowser,
  login,
  screenshot,
} from './appliance.mjs';

// A reader of the example site whose door the level below opens at any hour, holidays
// included, with anti-passback off in its zones: the same swipe is granted at any time
// of the test run, as often as it is repeated.
const READER = 'floor-3-stair-north-in';
const DOOR = 'Floor 3 Stair North';
const LEVEL = 'Server Room';

// A Modbus reader of the example site (the loading dock's side door), registered on a
// loopback port where `simulate` serves a stand-in device for the appliance to poll.
const MODBUS_READER = 'loading-dock-side-door-in';
const MODBUS_DOOR = 'Loading Dock Side Door';

const LOCKDOWN_CONFIRMATION = 'Every door locks and cards stop working until lockdown ends';

const WAIT_MS = 10_000;

/** The navigation's links, by name, in the console's page contract. */
const SECTIONS = [
  'Dashboard',
  'People',
  'Doors',
  'Access',
  'Events',
  'Activity',
  'Why?',
  'Audit log',
  'Admins',
  'Settings',
  'Lockdown',
];

let app;
let browser;
let openContexts = [];
let serial = 0;

/** Names, employee ids and card UIDs no other person of the site has. */
function fresh(label) {
  serial += 1;
  const hex = (0xb7e000 + serial).toString(16).toUpperCase();
  return {
    name: `${label} ${serial}`,
    employeeId: `BT-${serial}`,
    card: `0B${hex}`,
  };
}

/** A person with a card and the level, made through the REST API (a test's setup, not its subject). */
async function personViaApi(label) {
  const { name, employeeId, card } = fresh(label);
  const level = await app.findOne('access-levels', LEVEL, 'name', LEVEL);
  const person = await app.api('POST', '/people', { employee_id: employeeId, name });
  await app.api('POST', '/credentials', { person_id: person.id, card_uid: card });
  await app.api('POST', '/entitlements', {
    person_id: person.id,
    level_id: level.id,
    justification: 'browser test',
  });
  return { id: person.id, name, employeeId, card };
}

async function personStatus(id) {
  return (await app.api('GET', `/people/${id}`)).status;
}

async function setPersonStatus(person, status) {
  await app.api('PUT', `/people/${person.id}`, {
    employee_id: person.employeeId,
    name: person.name,
    status,
  });
}

/** A fresh browser context signed in as `who` (one of ADMINS), and its page. */
async function signedIn(who, viewport) {
  const page = await newPage(viewport);
  await login(page, who.username, who.password);
  return page;
}

/** A page in a fresh browser context, at `viewport` (Playwright's 1280×720 if none). */
async function newPage(viewport) {
  const context = await browser.newContext({ baseURL: app.baseURL, ...(viewport && { viewport }) });
  context.setDefaultTimeout(WAIT_MS);
  openContexts.push(context);
  const page = await context.newPage();
  // A confirmation dialog before a change (hx-confirm) is answered yes, as a person would;
  // unanswered, Playwright would dismiss it and the change would not happen.
  page.on('dialog', (dialog) => dialog.accept());
  return page;
}

/** Waits until the locator's text satisfies `predicate`; returns the text. */
async function textWhen(locator, predicate, what) {
  const deadline = Date.now() + WAIT_MS;
  let text = null;
  while (Date.now() < deadline) {
    text = (await locator.count()) > 0 ? (await locator.first().innerText()).trim() : null;
    if (text !== null && predicate(text)) return text;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`${what}: got ${JSON.stringify(text)} after ${WAIT_MS} ms`);
}

/**
 * Where the form of `button` posts (its hx-post, else its action), its fields as they
 * would be sent without the CSRF token, and that token.
 */
async function formOf(button) {
  return button.evaluate((node) => {
    const form = node.closest('form');
    if (!form) throw new Error(`the button "${node.textContent.trim()}" is in no form`);
    const data = new FormData(form);
    const csrf = data.get('csrf');
    data.delete('csrf');
    const target = node.getAttribute('hx-post') ?? form.getAttribute('hx-post');
    return {
      action: target ? new URL(target, document.baseURI).href : form.action,
      fields: Object.fromEntries(data),
      csrf,
    };
  });
}

/** The live feed's entry for a swipe of `name` with `result`, once it is there. */
async function feedEntry(page, name, result) {
  const entry = page
    .locator('#live-feed li')
    .filter({ hasText: name })
    .filter({ hasText: new RegExp(`\\b${result}\\b`, 'i') });
  await entry.first().waitFor({ state: 'visible' });
  const text = await entry.first().innerText();
  assert.match(text, new RegExp(DOOR), `the feed names the door: ${text}`);
  return entry.first();
}

describe('the web console', { timeout: 10 * 60_000 }, () => {
  before(async () => {
    app = await Appliance.start();
    browser = await launchBrowser();
  });

  afterEach(async () => {
    for (const context of openContexts) await context.close();
    openContexts = [];
  });

  after(async () => {
    await browser?.close();
    await app?.stop();
  });

  it('signs in after a wrong password, onto the dashboard with every section linked', async () => {
    const page = await newPage();
    await page.goto('/login');
    await screenshot(page, 'login');
    await page.getByLabel('Username').fill(ADMINS.admin.username);
    await page.getByLabel('Password').fill('not the password at all');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').waitFor({ state: 'visible' });
    assert.equal(new URL(page.url()).pathname, '/login');

    await login(page, ADMINS.admin.username, ADMINS.admin.password);
    assert.equal(new URL(page.url()).pathname, '/');
    assert.equal(
      (await page.getByRole('heading', { level: 1 }).innerText()).trim(),
      'Dashboard',
    );
    await page.locator('#live-feed').waitFor({ state: 'attached' });
    await screenshot(page, 'dashboard');
    assert.equal(await page.locator('#lockdown-banner').count(), 0, 'no lockdown yet');
    const missing = [];
    for (const name of SECTIONS) {
      if ((await page.getByRole('link', { name, exact: true }).count()) !== 1) missing.push(name);
    }
    assert.deepEqual(missing, [], 'navigation links missing');
  });

  it('opens every section of the navigation', async () => {
    const page = await signedIn(ADMINS.admin);
    // Each section is tried even when one before it fails, so that every page there is
    // gets its screenshot; the failures are reported together.
    const problems = [];
    for (const name of SECTIONS.filter((section) => section !== 'Dashboard')) {
      try {
        await page.goto('/');
        const href = await page.getByRole('link', { name, exact: true }).getAttribute('href', {
          timeout: 1_000,
        });
        const response = await page.goto(href);
        if (response.status() !== 200) {
          problems.push(`${name} (${href}): status ${response.status()}`);
          continue;
        }
        await page.getByRole('heading', { level: 1 }).waitFor({ state: 'visible' });
        await screenshot(page, name.toLowerCase().replace(/[^a-z]+/g, '-').replace(/-$/, ''));
      } catch (error) {
        problems.push(`${name}: ${error.message.split('\n')[0]}`);
      }
    }
    assert.deepEqual(problems, []);
  });

  it('opens the pages inside the sections', async () => {
    const page = await signedIn(ADMINS.admin);
    // Each page is tried even when one before it fails, so that every page there is gets
    // its screenshot; the failures are reported together.
    const problems = [];
    const heading = async () => (await page.getByRole('heading', { level: 1 }).innerText()).trim();
    for (const [link, from, pathname, title] of [
      ['Cards', '/people', '/cards', 'Cards'],
      ['Schedules', '/levels', '/schedules', 'Schedules'],
      ['Holidays', '/levels', '/holidays', 'Holidays'],
      ['Zones', '/levels', '/zones', 'Zones'],
      ['API tokens', '/admins', '/tokens', 'API tokens'],
    ]) {
      try {
        await page.goto(from);
        await page.getByRole('link', { name: link, exact: true }).click();
        await page.waitForURL((url) => url.pathname === pathname);
        const shown = await heading();
        if (shown !== title) problems.push(`${link} (${pathname}): the page is headed "${shown}"`);
        await screenshot(page, pathname.slice(1));
      } catch (error) {
        problems.push(`${link} from ${from}: ${error.message.split('\n')[0]}`);
      }
    }
    // The first door and the first access level of their lists, each on a page of its own.
    for (const [from, name, ready] of [
      ['/doors', 'door', () => page.getByRole('button', { name: 'Unlock' }).waitFor({ state: 'visible' })],
      ['/levels', 'level', () => page.getByRole('heading', { level: 1 }).waitFor({ state: 'visible' })],
    ]) {
      try {
        await page.goto(from);
        const first = page.getByRole('table').getByRole('link').first();
        const linked = (await first.innerText()).trim();
        await first.click();
        await page.waitForURL((url) => new RegExp(`^${from}/\\d+$`).test(url.pathname));
        await ready();
        const shown = await heading();
        if (!shown.startsWith(linked)) problems.push(`${name} "${linked}": the page is headed "${shown}"`);
        await screenshot(page, name);
      } catch (error) {
        problems.push(`the first ${name} of ${from}: ${error.message.split('\n')[0]}`);
      }
    }
    assert.deepEqual(problems, []);
  });

  it('adds a zone and a schedule, sees the schedule on its week view, and changes it', async () => {
    const page = await signedIn(ADMINS.admin);
    const { name } = fresh('Browser Wing');

    // A zone inside the first zone of the site, with soft anti-passback.
    await page.goto('/zones');
    await page.getByLabel('Name').fill(name);
    const parent = await page.getByLabel('Inside', { exact: true }).locator('option').nth(1).innerText();
    await page.getByLabel('Inside', { exact: true }).selectOption({ index: 1 });
    await page.getByLabel(/^Anti-passback/).selectOption('soft');
    await page.getByRole('button', { name: 'Add zone' }).click();
    await page.waitForURL((url) => /^\/zones\/\d+$/.test(url.pathname));
    assert.equal((await page.getByRole('heading', { level: 1 }).innerText()).trim(), name);
    assert.match(await page.locator('.facts').innerText(), /Soft/);
    await screenshot(page, 'zone');

    // Typing in the tree's search narrows it as you type, the new zone below its parent.
    await page.goto('/zones');
    await page.getByLabel('Search').fill(name);
    await textWhen(
      page.locator('#zones-results'),
      (text) => text.includes(`1 zone and 0 doors matching “${name}”`),
      'the zone search',
    );
    const rows = page.locator('#zones-results tbody tr');
    assert.equal(await rows.count(), parent.split(' › ').length + 1, 'the zone and the zones above it');
    assert.match(await rows.last().innerText(), new RegExp(name));
    assert.match(await rows.first().innerText(), /holds a match/);
    await screenshot(page, 'zones-search');

    // A schedule open Monday to Friday 07:00–18:00, holidays or not.
    const schedule = fresh('Browser Shift').name;
    await page.goto('/schedules');
    await page.getByRole('link', { name: 'New schedule' }).click();
    await page.waitForURL((url) => url.pathname === '/schedules/new');
    await page.getByLabel('Name').fill(schedule);
    await page.getByLabel('On holidays').selectOption('ignore');
    const row = page.locator('#w0');
    for (const day of ['Mon', 'Tue', 'Wed', 'Thu', 'Fri']) {
      await row.getByLabel(day, { exact: true }).check();
    }
    await page.getByLabel('Window 1 opens at').fill('07:00');
    await page.getByLabel('Window 1 closes at').fill('18:00');
    await page.getByRole('button', { name: 'Save schedule' }).click();
    await page.waitForURL((url) => /^\/schedules\/\d+$/.test(url.pathname));
    const at = new URL(page.url()).pathname;
    assert.match((await page.getByRole('heading', { level: 1 }).innerText()), new RegExp(schedule));

    // The week view: a bar on each of the five weekdays of the coming seven days.
    const bars = () => page.locator('svg.week rect.open title').allTextContents();
    const opened = await bars();
    assert.equal(opened.length, 5, `one bar per weekday: ${opened}`);
    for (const bar of opened) assert.match(bar, /^(Mon|Tue|Wed|Thu|Fri) .*: open 07:00–18:00$/);
    assert.match(await page.locator('main').innerText(), /Mon–Fri 07:00–18:00/);
    await screenshot(page, 'schedule');

    // Closing at 20:00 instead: the week follows.
    await page.getByLabel('Window 1 closes at').fill('20:00');
    await page.getByRole('button', { name: 'Save schedule' }).click();
    // SVG titles have text but no innerText: waited for by their text content.
    await page
      .locator('svg.week rect.open title', { hasText: 'open 07:00–20:00' })
      .first()
      .waitFor({ state: 'attached' });
    assert.equal(new URL(page.url()).pathname, at);
    const changed = await bars();
    assert.equal(changed.length, 5);
    for (const bar of changed) assert.match(bar, /: open 07:00–20:00$/);

    // Saved again as it is: nothing changed, and the page says so.
    await page.getByRole('button', { name: 'Save schedule' }).click();
    await page.getByRole('status').filter({ hasText: 'Nothing changed' }).waitFor();
    await screenshot(page, 'schedule-unchanged');
  });

  // Shared by the next two tests: the person the admin adds through the console.
  let added = null;

  it('adds a person with a card and a level, whose swipe shows in the live feed at once', async () => {
    const dashboard = await signedIn(ADMINS.admin);
    await dashboard.evaluate(() => {
      window.gatehouseNotReloaded = true;
    });

    const page = await newPage();
    await login(page, ADMINS.admin.username, ADMINS.admin.password);
    await page.goto('/people');
    await page.getByLabel('Search').waitFor({ state: 'visible' });
    await page.getByRole('link', { name: 'Add person' }).click();
    await page.waitForURL((url) => url.pathname === '/people/new');
    const person = fresh('Flora Feedwatcher');

    // A card number that is not hex: refused beside the field, with the form kept.
    await page.getByLabel('Name').fill(person.name);
    await page.getByLabel('Employee ID').fill(person.employeeId);
    await page.getByLabel('Card number').fill('not-a-card');
    await page.getByLabel('Access level').selectOption({ label: LEVEL });
    await page.getByRole('button', { name: 'Create person' }).click();
    await page.locator('.field-error').first().waitFor({ state: 'visible' });
    assert.notEqual((await page.locator('.field-error').first().innerText()).trim(), '');
    assert.equal(await page.getByLabel('Name').inputValue(), person.name);
    assert.equal(await page.getByLabel('Employee ID').inputValue(), person.employeeId);
    assert.equal(await page.getByLabel('Card number').inputValue(), 'not-a-card');
    assert.equal(
      await page.getByLabel('Access level').evaluate((select) => select.selectedOptions[0]?.text),
      LEVEL,
    );
    await screenshot(page, 'person-new-invalid');

    await page.getByLabel('Card number').fill(person.card);
    const nextYear = new Date(Date.now() + 365 * 24 * 3600 * 1000).toISOString().slice(0, 10);
    await page.getByLabel('Valid until').fill(nextYear);
    await page.getByRole('button', { name: 'Create person' }).click();
    await page.waitForURL((url) => /^\/people\/\d+$/.test(url.pathname));
    assert.equal((await page.getByRole('heading', { level: 1 }).innerText()).trim(), person.name);
    // The page says what was done, once: the person, their card and their level.
    const done = page.getByRole('status').filter({ hasText: `${person.name} added, with card` });
    await done.waitFor({ state: 'visible' });
    assert.match(await done.innerText(), new RegExp(`${LEVEL} granted until ${nextYear}`));
    assert.doesNotMatch(page.url(), /\?/, 'nothing of the notice in the address');
    await page.getByRole('button', { name: 'Suspend' }).waitFor({ state: 'visible' });
    await page.getByRole('button', { name: 'Terminate' }).waitFor({ state: 'visible' });
    await screenshot(page, 'person');
    added = { ...person, id: Number(new URL(page.url()).pathname.split('/').pop()) };

    const answer = await app.swipe(READER, person.card);
    assert.match(answer, new RegExp(`^${READER}: granted \\(unlock \\d+ ms\\), `), answer);
    await feedEntry(dashboard, person.name, 'granted');
    assert.equal(
      await dashboard.evaluate(() => window.gatehouseNotReloaded),
      true,
      'the dashboard was not reloaded',
    );
    await screenshot(dashboard, 'dashboard-live');
  });

  it('hears a swipe at a Modbus reader, polled on loopback like every reader of the site', async () => {
    assert.deepEqual(await app.readerHostsOutsideLoopback(), [], 'readers outside this machine');
    // Their level opens no loading dock door: the device is told no, and the feed says so.
    const person = await personViaApi('Mo Dbus');
    const dashboard = await signedIn(ADMINS.admin);
    await dashboard.locator('#live-feed').waitFor({ state: 'attached' });
    const answer = await app.swipe(MODBUS_READER, person.card);
    assert.match(answer, new RegExp(`^${MODBUS_READER}: denied\\b`), answer);
    const entry = dashboard
      .locator('#live-feed li')
      .filter({ hasText: person.name })
      .filter({ hasText: /\bdenied\b/i });
    await entry.first().waitFor({ state: 'visible' });
    assert.match(await entry.first().innerText(), new RegExp(MODBUS_DOOR));
  });

  it('suspends the person: their next swipe is denied, in the feed too', async () => {
    // On its own (the previous test failed before the person existed), with a person made
    // through the API.
    const person = added ?? (await personViaApi('Sam Suspended'));
    const dashboard = await signedIn(ADMINS.admin);
    await dashboard.evaluate(() => {
      window.gatehouseNotReloaded = true;
    });

    const page = await signedIn(ADMINS.admin);
    await page.goto(`/people/${person.id}`);
    await page.getByRole('button', { name: 'Suspend' }).click();
    await page.getByRole('button', { name: 'Reinstate' }).waitFor({ state: 'visible' });
    assert.equal(await personStatus(person.id), 'suspended');
    await screenshot(page, 'person-suspended');

    const answer = await app.swipe(READER, person.card);
    assert.match(answer, new RegExp(`^${READER}: denied: inactive, `), answer);
    const denied = await feedEntry(dashboard, person.name, 'denied');
    if (added) {
      // Newest first: the denial stands above the previous test's grant, which came with
      // the page.
      const granted = await feedEntry(dashboard, person.name, 'granted');
      const deniedFirst = await denied.evaluate(
        (node, other) => Boolean(node.compareDocumentPosition(other) & Node.DOCUMENT_POSITION_FOLLOWING),
        await granted.elementHandle(),
      );
      assert.ok(deniedFirst, 'the newest entry comes first');
    }
    assert.equal(await dashboard.evaluate(() => window.gatehouseNotReloaded), true);
  });

  it('explains Granted for an active person and Denied once they are suspended', async () => {
    const person = await personViaApi('Wanda Why');
    const page = await signedIn(ADMINS.admin);
    await page.goto('/why');
    const ask = async () => {
      await page.getByLabel('Person').fill(person.employeeId);
      await page.getByLabel('Door').selectOption({ label: DOOR });
      assert.notEqual(await page.getByLabel('When').inputValue(), '', 'When defaults to now');
      await page.getByRole('button', { name: 'Explain' }).click();
    };
    await ask();
    await textWhen(page.locator('#verdict'), (t) => t.startsWith('Granted'), 'the verdict');
    await screenshot(page, 'why');

    await setPersonStatus(person, 'suspended');
    await page.goto('/why');
    await ask();
    await textWhen(page.locator('#verdict'), (t) => t.startsWith('Denied'), 'the verdict');
    await screenshot(page, 'why-denied');
  });

  it('starts a lockdown (a banner on every page, cards refused) and ends it', async () => {
    const person = await personViaApi('Lola Lockdown');
    const page = await signedIn(ADMINS.admin);
    try {
      await page.goto('/lockdown');
      await page.getByLabel(LOCKDOWN_CONFIRMATION).check();
      await page.getByRole('button', { name: 'Start lockdown' }).click();
      await page.getByRole('button', { name: 'End lockdown' }).waitFor({ state: 'visible' });
      await screenshot(page, 'lockdown');
      await page.goto('/people');
      await page.locator('#lockdown-banner').waitFor({ state: 'visible' });
      await screenshot(page, 'people-lockdown');
      // No Unlock is offered during the lockdown; the door page says why instead.
      const door = await app.findOne('doors', DOOR, 'name', DOOR);
      await page.goto(`/doors/${door.id}`);
      await page.locator('#no-unlock').waitFor({ state: 'visible' });
      assert.equal(await page.getByRole('button', { name: 'Unlock' }).count(), 0);
      await screenshot(page, 'door-lockdown');
      const answer = await app.swipe(READER, person.card);
      assert.match(answer, new RegExp(`^${READER}: denied: lockdown, `), answer);

      await page.goto('/lockdown');
      await page.getByRole('button', { name: 'End lockdown' }).click();
      await page.getByRole('button', { name: 'Start lockdown' }).waitFor({ state: 'visible' });
      await page.goto('/people');
      await page.getByLabel('Search').waitFor({ state: 'visible' });
      assert.equal(await page.locator('#lockdown-banner').count(), 0, 'the banner is gone');
      const after = await app.swipe(READER, person.card);
      assert.match(after, new RegExp(`^${READER}: granted `), after);
    } finally {
      // A lockdown left on would deny every later test's swipes.
      for (const site of (await app.api('GET', '/sites')).items) {
        if (site.lockdown) {
          await app.api('PUT', `/sites/${site.id}`, { name: site.name, timezone: site.timezone });
        }
      }
    }
  });

  it('tells unknown doors, refuses to unlock a locked door unconfirmed, and shows a running unlock', async () => {
    const page = await signedIn(ADMINS.admin);
    // The example site's doors have not reported their contacts: unknown, not closed.
    await page.goto('/doors');
    await page.locator('main table tr.unknown').first().waitFor({ state: 'visible' });
    // A door with a reader that the other tests do not swipe at, set to locked.
    const busy = new Set([
      (await app.findOne('doors', DOOR, 'name', DOOR)).id,
      (await app.findOne('doors', MODBUS_DOOR, 'name', MODBUS_DOOR)).id,
    ]);
    const readers = (await app.api('GET', '/readers?limit=500')).items;
    const doorId = readers.find((reader) => !busy.has(reader.door_id)).door_id;
    const door = await app.api('GET', `/doors/${doorId}`);
    await app.api('PUT', `/doors/${doorId}`, { ...door, mode: 'locked' });
    try {
      await page.goto(`/doors/${doorId}`);
      await page.getByLabel('Unlock now for').selectOption('60');
      await page.getByRole('button', { name: 'Unlock' }).click();
      // Back on the door page, which says why (a refused notice, announced as an alert).
      const refusal = await textWhen(
        page.getByRole('alert'),
        (text) => text.includes('its mode is locked'),
        'the reason the unlock was refused',
      );
      assert.ok(refusal.startsWith(`${door.name} was not unlocked`), refusal);
      await screenshot(page, 'door-unlock-refused');

      await page.getByLabel('Unlock now for').selectOption('60');
      await page.getByLabel('Unlock although the door is locked').check();
      await page.getByRole('button', { name: 'Unlock' }).click();
      await page.waitForURL((url) => url.pathname === `/doors/${doorId}` && url.search === '');
      await textWhen(
        page.locator('#door-unlocked'),
        (text) => /^unlocked until \d\d:\d\d/.test(text),
        'the door page says until when it is unlocked',
      );
      await screenshot(page, 'door-unlocked');
      await page.goto('/');
      await textWhen(
        page.locator('#unlocked-doors'),
        (text) => text.includes(`${door.name}: unlocked until `),
        'the dashboard lists the unlocked door',
      );
      await screenshot(page, 'dashboard-unlocked');
    } finally {
      await app.api('PUT', `/doors/${doorId}`, door);
    }
  });

  it('adds a door, renames it, and deletes it', async () => {
    const page = await signedIn(ADMINS.admin);
    const { name } = fresh('Browser Door');
    await page.goto('/doors');
    await page.getByLabel('Name').fill(name);
    await page.getByRole('button', { name: 'Add door' }).click();
    // No zone chosen: the form comes back with the message beside the field.
    await textWhen(page.locator('#zone_id-error'), (t) => t.includes('choose a zone'), 'the zone message');
    assert.equal(await page.getByLabel('Name').inputValue(), name, 'the name typed is kept');
    await screenshot(page, 'door-add-invalid');
    await page.getByLabel('Zone').selectOption({ index: 1 });
    await page.getByRole('button', { name: 'Add door' }).click();
    await page.waitForURL((url) => /^\/doors\/\d+$/.test(url.pathname));
    assert.equal((await page.getByRole('heading', { level: 1 }).innerText()).trim(), name);
    await textWhen(page.locator('#door-state'), (t) => t.startsWith('unknown'), 'a new door is unknown');

    await page.getByLabel('Name', { exact: true }).fill(`${name} East`);
    await page.getByLabel(/^Unlock time, seconds/).fill('3');
    await page.getByRole('button', { name: 'Save door' }).click();
    await textWhen(
      page.getByRole('heading', { level: 1 }),
      (t) => t === `${name} East`,
      'the door renamed',
    );
    await screenshot(page, 'door-settings');
    const url = page.url();
    await page.getByRole('button', { name: 'Delete door' }).click();
    await page.waitForURL((u) => u.pathname === '/doors');
    const gone = await page.request.get(url);
    assert.equal(gone.status(), 404, 'the door is gone');
  });

  it('shows an auditor no editing controls and refuses their changes', async () => {
    const person = await personViaApi('Arlo Audited');
    const page = await signedIn(ADMINS.auditor);
    await page.goto('/people');
    await page.getByLabel('Search').waitFor({ state: 'visible' });
    assert.equal(await page.getByRole('link', { name: 'Add person' }).count(), 0);

    await page.goto(`/people/${person.id}`);
    assert.equal((await page.getByRole('heading', { level: 1 }).innerText()).trim(), person.name);
    assert.equal(await page.getByRole('button', { name: 'Suspend' }).count(), 0);

    const csrf = await page.locator('input[name="csrf"]').first().inputValue();
    assert.notEqual(csrf, '');
    const response = await page.request.post(`/people/${person.id}/suspend`, {
      form: { csrf },
      maxRedirects: 0,
    });
    assert.equal(response.status(), 403);
    assert.equal(await personStatus(person.id), 'active');
  });

  it('refuses a form post without its CSRF token', async () => {
    const person = await personViaApi('Cora Csrf');
    const page = await signedIn(ADMINS.admin);
    await page.goto(`/people/${person.id}`);
    const suspend = await formOf(page.getByRole('button', { name: 'Suspend' }));
    assert.ok(suspend.csrf, 'the Suspend form carries its CSRF token');
    const post = (fields) => page.request.post(suspend.action, { form: fields, maxRedirects: 0 });
    assert.equal((await post(suspend.fields)).status(), 403, 'without a token');
    assert.equal(
      (await post({ ...suspend.fields, csrf: `${suspend.csrf}x` })).status(),
      403,
      'with a wrong token',
    );
    assert.equal(await personStatus(person.id), 'active');
    // The same post with the form's token is accepted: the refusals were the token's.
    const accepted = await post({ ...suspend.fields, csrf: suspend.csrf });
    assert.ok(accepted.status() < 400, `with the token: ${accepted.status()}`);
    assert.equal(await personStatus(person.id), 'suspended');

    await page.goto('/lockdown');
    await page.getByLabel(LOCKDOWN_CONFIRMATION).check();
    const start = await formOf(page.getByRole('button', { name: 'Start lockdown' }));
    assert.ok(start.csrf, 'the lockdown form carries its CSRF token');
    const refused = await page.request.post(start.action, { form: start.fields, maxRedirects: 0 });
    assert.equal(refused.status(), 403);
    const sites = (await app.api('GET', '/sites')).items;
    assert.ok(sites.every((site) => !site.lockdown), 'no lockdown started');
  });

  it('takes a dashboard whose session ended in another tab to the sign-in page', async () => {
    const dashboard = await signedIn(ADMINS.admin);
    await textWhen(dashboard.locator('#live-status'), (text) => text === 'live', 'the feed is live');
    // Another tab of the same browser signs out: the same session cookie.
    const other = await dashboard.context().newPage();
    await other.goto('/');
    await other.getByRole('button', { name: 'Sign out' }).click();
    await other.waitForURL((url) => url.pathname === '/login');
    // The next event ends the dashboard's stream; reconnecting, it is refused, and the
    // page goes to sign in instead of saying "reconnecting…" for good.
    const person = await personViaApi('Sid Signedout');
    await app.swipe(READER, person.card);
    // Waited on as the person sees it, the sign-in form, not on one navigation: the feed's
    // reload and a panel's refresh may both head there, and the first is then aborted.
    await dashboard.getByLabel('Username').waitFor({ state: 'visible', timeout: 30_000 });
    assert.equal(new URL(dashboard.url()).pathname, '/login');
  });

  // Last, so that the lists have the rows the tests before made (events, the feed).
  it('lays out the main pages at desktop and tablet width without sideways scrolling', async () => {
    // Where the pages that show one thing are: the first of each list.
    const probe = await signedIn(ADMINS.admin);
    const first = async (list, links) => {
      await probe.goto(list);
      return probe.locator(links).first().getAttribute('href');
    };
    // The person added in the console, with their swipes, when that test got that far.
    const person = added?.id ?? (await personViaApi('Tablet Tess')).id;
    const pages = [
      ['dashboard', '/'],
      ['people', '/people'],
      ['person', `/people/${person}`],
      ['person-new', '/people/new'],
      ['doors', '/doors'],
      ['door', await first('/doors', 'main table a[href^="/doors/"]')],
      ['levels', '/levels'],
      ['level', await first('/levels', 'main table a[href^="/levels/"]')],
      ['schedules', '/schedules'],
      ['schedule', await first('/schedules', 'main h2 a[href^="/schedules/"]')],
      ['zones', '/zones'],
      ['events', '/events'],
      ['activity', '/activity'],
      ['why', '/why'],
      ['audit', '/audit'],
      ['admins', '/admins'],
      ['tokens', '/tokens'],
      ['holidays', '/holidays'],
      ['settings', '/settings'],
      ['lockdown', '/lockdown'],
    ];
    const problems = [];
    for (const [size, viewport] of Object.entries(VIEWPORTS)) {
      const page = await signedIn(ADMINS.admin, viewport);
      for (const [name, href] of pages) {
        const response = await page.goto(href);
        if (response.status() !== 200) {
          problems.push(`${size} ${href}: status ${response.status()}`);
          continue;
        }
        await page.getByRole('heading', { level: 1 }).waitFor({ state: 'visible' });
        await screenshot(page, `${size}-${name}`);
        // Wider than the window: the page would scroll sideways. Name what sticks out.
        const wide = await page.evaluate(() => {
          const width = document.documentElement.clientWidth;
          if (document.documentElement.scrollWidth <= width) return null;
          const out = [...document.querySelectorAll('main *')]
            .filter((el) => el.getBoundingClientRect().right > width + 1)
            .filter((el) => !el.parentElement.closest('main *') || el.parentElement.getBoundingClientRect().right <= width + 1)
            .slice(0, 3)
            .map((el) => `${el.tagName.toLowerCase()}${el.className ? `.${String(el.className).split(' ').join('.')}` : ''} (${Math.round(el.getBoundingClientRect().right)} px)`);
          return `${document.documentElement.scrollWidth} px wide in ${width} px: ${out.join(', ')}`;
        });
        if (wide) problems.push(`${size} ${href}: ${wide}`);
      }
    }
    assert.deepEqual(problems, [], 'pages that scroll sideways');
  });
});
