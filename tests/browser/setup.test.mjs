// The first admin, made in the browser on an appliance that has none: the sign-in page
// points to /setup, which takes the one-time code `gatehouse serve` wrote to the data
// folder, makes the admin and signs them in (README.md in this folder).

import assert from 'node:assert/strict';
import { access, readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';

import { Appliance, launchBrowser, screenshot } from './appliance.mjs';

const USERNAME = 'fiona';
const PASSWORD = 'fiona-first-admin-pw';

describe('an appliance with no admin yet', { timeout: 5 * 60_000 }, () => {
  let app;
  let browser;

  before(async () => {
    app = await Appliance.start({ admins: false });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await app?.stop();
  });

  it('makes the first admin with the setup code from the data folder, and signs them in', async () => {
    const context = await browser.newContext({ baseURL: app.baseURL });
    context.setDefaultTimeout(10_000);
    const page = await context.newPage();
    try {
      await page.goto('/');
      await page.waitForURL((url) => url.pathname === '/login');
      const hint = page.getByRole('status').filter({ hasText: 'No admin exists yet' });
      await hint.waitFor({ state: 'visible' });
      await screenshot(page, 'login-no-admin');

      await hint.getByRole('link', { name: 'Make the first admin' }).click();
      await page.waitForURL((url) => url.pathname === '/setup');
      assert.match(
        await page.locator('body').innerText(),
        new RegExp(app.setupCodeFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')),
        'the page says where the code is',
      );
      const fill = async (code) => {
        await page.getByLabel('Setup code').fill(code);
        await page.getByLabel('Username').fill(USERNAME);
        await page.getByLabel(/^Password \(/).fill(PASSWORD);
        await page.getByLabel('Password again').fill(PASSWORD);
        await page.getByRole('button', { name: 'Make the first admin' }).click();
      };

      // A wrong code: refused, the username kept, no admin made.
      await fill('not-the-setup-code');
      const alert = page.getByRole('alert');
      await alert.waitFor({ state: 'visible' });
      assert.match(await alert.innerText(), /not the setup code/);
      assert.equal(await page.getByLabel('Username').inputValue(), USERNAME);
      await screenshot(page, 'setup-wrong-code');

      const code = (await readFile(app.setupCodeFile, 'utf8')).trim();
      assert.notEqual(code, '');
      await fill(code);
      await page.waitForURL((url) => url.pathname === '/');
      assert.equal(
        (await page.getByRole('heading', { level: 1 }).innerText()).trim(),
        'Dashboard',
      );
      assert.match(await page.locator('header').innerText(), new RegExp(`${USERNAME}\\s*\\(admin\\)`));
      await assert.rejects(access(app.setupCodeFile), 'the used code is deleted');

      // Once an admin exists, /setup only sends people to sign in.
      const again = await page.request.get('/setup', { maxRedirects: 0 });
      assert.equal(again.status(), 303);
      assert.equal(again.headers().location, '/login');

      // The new admin is in the audit log, made by the setup.
      await page.goto('/audit');
      assert.match(await page.locator('main').innerText(), /first-admin setup/);
    } finally {
      await context.close();
    }
  });
});
