// Browser tests of the web console (/ui/): the real npsd on an ephemeral loopback port
// with a temporary database, Debian's chromium driven by playwright-core, and the API to
// set up and to check what the console did. Run by `make check` from the repository root:
//   NPSD_BIN=build/npsd NPSCTL_BIN=build/npsctl node --test tests/ui/console.test.mjs
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

const NPSD = process.env.NPSD_BIN || 'build/npsd';
const NPSCTL = process.env.NPSCTL_BIN || 'build/npsctl';
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

let dir;
let npsd;
let base;
let browser;
const keys = {};
let answers = 0;
// A webhook receiver on loopback: what it got, in order, the paths it answers 500 to, and
// those it answers something else to (path -> {status, body}).
let receiver;
let hooks;
const received = [];
const failing = new Set();
const replies = new Map();

function createKey(role, name) {
  return execFileSync(NPSCTL, ['--db', join(dir, 'npsd.db'), 'key', 'create', '--role', role, '--name', name],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
}

async function call(key, method, path, body) {
  const init = { method, headers: { Authorization: `Bearer ${key}` } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(base + path, init);
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, body: text ? JSON.parse(text) : null };
}

// A callback as the API has it now, read with the manager's key.
async function stored(id) {
  return (await call(keys.manager, 'GET', `/v1/callbacks/${id}`)).body;
}

// Posts one answer; every test uses a touchpoint of its own, so that claims filtered by it
// take that test's callbacks only.
async function answer(touchpoint, score, fields = {}) {
  answers += 1;
  const r = await call(keys.ingest, 'POST', '/v1/surveys', {
    response_id: `ui-${answers}`,
    customer: { id: `C-ui-${answers}`, name: `Customer ${answers}`, phone: `+3161234${String(answers).padStart(4, '0')}` },
    touchpoint,
    score,
    ...fields,
  });
  assert.equal(r.status, 201, r.text);
  return r.body;
}

// A page in a fresh context (its own sessionStorage) that records any breach of the
// console's Content-Security-Policy; close it with done(), which asserts there was none.
async function newPage(options = {}) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  await page.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(e.violatedDirective));
  });
  return page;
}

async function done(page) {
  assert.deepEqual(await page.evaluate(() => window.cspViolations), []);
  await page.context().close();
}

// Opens the console at hash and signs in with key (a token); resolves once signed in.
async function signIn(page, key, hash = '') {
  await page.goto(`${base}/ui/${hash}`);
  await page.fill('#token', key);
  await page.click('#sign-in button[type=submit]');
  await page.waitForSelector('#nav:not([hidden])');
}

async function signedIn(role, hash = '', options = {}) {
  const page = await newPage(options);
  await signIn(page, keys[role], hash);
  return page;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'npsd-ui-'));
  writeFileSync(join(dir, 'npsd.conf'), [
    '[server]', 'listen = 127.0.0.1:0',
    '[database]', `path = ${join(dir, 'npsd.db')}`,
    // A short lease, as a call centre may set: the console must renew it in time.
    '[callbacks]', 'hours = always', 'lease = 1m',
    // The receiver is on loopback; one quick retry, then a delivery fails for good.
    '[webhooks]', 'allow_private_targets = true', 'retry = 1s',
  ].join('\n'));
  receiver = createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      received.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const reply = replies.get(req.url);
      const status = reply ? reply.status : failing.has(req.url) ? 500 : 200;
      res.writeHead(status, { 'Content-Type': 'text/plain' });
      res.end(reply ? reply.body : status === 200 ? 'ok' : 'down for maintenance');
    });
  });
  await new Promise((resolve) => { receiver.listen(0, '127.0.0.1', resolve); });
  hooks = `http://127.0.0.1:${receiver.address().port}`;
  keys.agent = createKey('agent', 'anna');
  keys.manager = createKey('manager', 'mark');
  keys.ingest = createKey('ingest', 'survey-tool');
  npsd = spawn(NPSD, ['--config', join(dir, 'npsd.conf'), '--port-file', join(dir, 'port'), '--log-level', 'warn'],
    { stdio: ['ignore', 'ignore', 'inherit'] });
  const portFile = join(dir, 'port');
  for (let i = 0; i < 200 && !(existsSync(portFile) && readFileSync(portFile, 'utf8').trim()); i++) await sleep(50);
  assert.ok(existsSync(portFile), 'npsd did not write its port');
  base = `http://127.0.0.1:${readFileSync(portFile, 'utf8').trim()}`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--disable-gpu', '--disable-dev-shm-usage'] });
});

after(async () => {
  try {
    if (browser) await browser.close();
    if (receiver) receiver.close();
    if (npsd) {
      // A clean stop on SIGTERM: under SANITIZE=1 a leak or an error report fails it too.
      const exited = npsd.exitCode !== null || npsd.signalCode !== null ? Promise.resolve()
        : new Promise((resolve) => npsd.once('exit', resolve));
      npsd.kill('SIGTERM');
      await exited;
      assert.equal(npsd.exitCode, 0, `npsd exited with ${npsd.exitCode} (signal ${npsd.signalCode})`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the console is served with headers that let it run nothing but its own script', async () => {
  const redirect = await fetch(`${base}/ui`, { redirect: 'manual' });
  assert.equal(redirect.status, 308);
  assert.equal(redirect.headers.get('location'), 'ui/');
  assert.equal((await fetch(`${base}/ui`)).url, `${base}/ui/`);

  const page = await fetch(`${base}/ui/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /^text\/html/);
  assert.match(page.headers.get('content-security-policy'), /default-src 'none'; script-src 'self'/);
  assert.match(page.headers.get('content-security-policy'), /frame-ancestors 'none'/);
  assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(await page.text(), readFileSync('src/ui/index.html', 'utf8'));

  const script = await fetch(`${base}/ui/app.js`);
  assert.match(script.headers.get('content-type'), /^text\/javascript/);
  assert.equal(await script.text(), readFileSync('src/ui/app.js', 'utf8'));
  const style = await fetch(`${base}/ui/app.css`);
  assert.match(style.headers.get('content-type'), /^text\/css/);
  assert.equal(await style.text(), readFileSync('src/ui/app.css', 'utf8'));
  // The worker that times a lease's renewals: a script of the console's own origin.
  const timer = await fetch(`${base}/ui/lease-timer.js`);
  assert.match(timer.headers.get('content-type'), /^text\/javascript/);
  assert.match(timer.headers.get('content-security-policy'), /worker-src 'self'/);
  assert.equal(await timer.text(), readFileSync('src/ui/lease-timer.js', 'utf8'));
  assert.equal((await fetch(`${base}/ui/nothing.js`)).status, 404);
});

test('a key that is unknown or not for the console is turned away', async () => {
  const page = await newPage();
  await page.goto(`${base}/ui/`);

  await page.fill('#token', 'tk_not_a_key');
  await page.click('#sign-in button[type=submit]');
  await page.waitForSelector('#notice.error');
  assert.match(await page.textContent('#notice'), /unknown or was revoked/);
  assert.equal(await page.isVisible('#sign-in'), true);

  await page.fill('#token', keys.ingest);
  await page.click('#sign-in button[type=submit]');
  await page.waitForFunction(() => /may not use the console/.test(document.querySelector('#notice').textContent));
  assert.equal(await page.evaluate(() => sessionStorage.getItem('npsd.token')), null);
  assert.equal(await page.isHidden('#nav'), true);
  await done(page);
});

test('a key revoked while its user works sends them back to sign in', async () => {
  const key = createKey('agent', 'temp-agent');
  const page = await newPage();
  await signIn(page, key);
  await page.waitForSelector('#claim');
  const list = execFileSync(NPSCTL, ['--db', join(dir, 'npsd.db'), 'key', 'list'], { encoding: 'utf8' });
  const id = list.split('\n').map((line) => line.split(/\s+/)).find((cols) => cols[2] === 'temp-agent')[0];
  execFileSync(NPSCTL, ['--db', join(dir, 'npsd.db'), 'key', 'revoke', String(id)], { stdio: 'ignore' });
  await sleep(1200); // npsd reloads its keys every second (README)
  await page.click('#nav a[data-view=calls]');
  await page.waitForSelector('#sign-in');
  assert.match(await page.textContent('#notice'), /unknown or was revoked/);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('npsd.token')), null);
  await done(page);
});

test('an agent takes the next call, sees what the customer said, and records the outcome and ideas', async () => {
  const hostile = '<img src=x onerror="window.pwned=1">Paid out after three weeks';
  const survey = await answer('ui-claim', 3, {
    customer: { id: 'C-marieke', name: 'Marieke de Vries', phone: '+31612349999', language: 'nl' },
    comment: hostile, attributes: { policy: 'AUTO-7' },
  });
  const page = await signedIn('agent');
  await page.waitForSelector('#claim');
  assert.equal(await page.textContent('#who'), 'anna (agent)');
  assert.equal(await page.isHidden('#nav a[data-view=reports]'), true);
  assert.match(await page.textContent('#callbacks'), /Marieke de Vries/);

  await page.fill('#claim-touchpoint', 'ui-claim');
  await page.click('#claim button[type=submit]');
  await page.waitForURL(new RegExp(`#/callbacks/${survey.callback.id}$`));
  await page.waitForSelector('#customer-name');
  assert.equal(await page.textContent('#customer-name'), 'Marieke de Vries');
  assert.equal(await page.getAttribute('#phone', 'href'), 'tel:+31612349999');
  assert.equal(await page.textContent('#status'), 'claimed');
  assert.equal(await page.textContent('dt:has(+ #attempts)'), 'Unanswered tries');
  assert.equal(await page.textContent('#attempts'), '0 of 3');
  // The customer's text is shown as text: no element made of it, nothing run.
  assert.equal(await page.textContent('#surveys .comment'), hostile);
  assert.equal(await page.locator('#main img').count(), 0);
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  assert.match(await page.textContent('#surveys'), /policy: AUTO-7/);
  assert.doesNotMatch(await page.textContent('#main'), /null|undefined/);

  await page.selectOption('#outcome', 'reached');
  await page.fill('#notes', 'Wants a status mail each week');
  await page.click('#add-improvement');
  await page.click('#add-improvement');
  const rows = page.locator('#improvements .improvement');
  await rows.nth(0).locator('[name=area]').selectOption('process');
  await rows.nth(0).locator('[name=text]').fill('Pay out claims within a week');
  await rows.nth(1).locator('[name=area]').selectOption('communication');
  await rows.nth(1).locator('[name=text]').fill('Mail the claim status every week');
  // Enter in an idea's field is no Save: the form is not submitted, the call stays open.
  await page.evaluate(() => {
    window.submits = 0;
    document.querySelector('#complete').addEventListener('submit', () => { window.submits += 1; });
  });
  await rows.nth(1).locator('[name=text]').press('Enter');
  assert.equal(await page.evaluate(() => window.submits), 0);
  assert.equal(await page.locator('#complete').count(), 1);
  assert.equal((await stored(survey.callback.id)).status, 'claimed');
  // A reload (or a lost lease) keeps what was typed and not saved.
  await page.reload();
  await page.waitForSelector('#complete');
  assert.equal(await page.inputValue('#notes'), 'Wants a status mail each week');
  assert.equal(await page.inputValue('#outcome'), 'reached');
  assert.deepEqual(await page.locator('#improvements [name=text]').evaluateAll((inputs) => inputs.map((i) => i.value)),
    ['Pay out claims within a week', 'Mail the claim status every week']);
  assert.equal(await rows.nth(1).locator('[name=area]').inputValue(), 'communication');
  await page.click('#complete button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#status')?.textContent === 'done');
  assert.match(await page.textContent('#notice'), /done/);
  assert.equal(await page.locator('#recorded li').count(), 2);
  assert.equal(await page.locator('#complete').count(), 0);
  assert.equal(await page.isVisible('#next-call'), true);
  assert.equal(await page.evaluate((id) => sessionStorage.getItem(`npsd.draft.${id}`), survey.callback.id), null);

  const now = await stored(survey.callback.id);
  assert.equal(now.status, 'done');
  assert.equal(now.outcome, 'reached');
  assert.equal(now.notes, 'Wants a status mail each week');
  assert.deepEqual(now.surveys.map((s) => s.attributes), [{ policy: 'AUTO-7' }]);
  assert.deepEqual(now.improvements, [
    { area: 'process', text: 'Pay out claims within a week' },
    { area: 'communication', text: 'Mail the claim status every week' },
  ]);
  await done(page);
});

test('with nobody due, taking the next call says so; the queue shows new answers by itself', async () => {
  const page = await newPage();
  await page.clock.install();
  await signIn(page, keys.agent);
  await page.fill('#claim-touchpoint', 'ui-nobody');
  await page.click('#claim button[type=submit]');
  await page.waitForFunction(() => /Nobody is due/.test(document.querySelector('#notice').textContent));
  assert.match(page.url(), /#?\/?ui\/(#\/calls)?$/);

  await answer('ui-nobody', 4, { customer: { id: 'C-late', name: 'Late Lotte', phone: '+31612340777' } });
  await page.locator('#claim-touchpoint').blur();
  await page.clock.fastForward(31 * 1000);
  await page.waitForFunction(() => /Late Lotte/.test(document.querySelector('#callbacks')?.textContent || ''));
  await done(page);
});

test('a refresh of the queue that fails keeps the queue and the claim form, says so, and tries again', async () => {
  await answer('ui-refresh', 5, { customer: { id: 'C-refresh', name: 'Refreshing Rik', phone: '+31612340555' } });
  const page = await newPage();
  await page.clock.install();
  await signIn(page, keys.agent, '#/calls?touchpoint=ui-refresh');
  await page.waitForFunction(() => /Refreshing Rik/.test(document.querySelector('#callbacks')?.textContent || ''));
  // npsd busy a moment when the page reads the queue again (a full report queue, a blip).
  let refusing = true;
  await page.route('**/v1/callbacks?*touchpoint=ui-refresh*', (route) => (refusing
    ? route.fulfill({
      status: 503,
      headers: { 'Retry-After': '5', 'Content-Type': 'application/json' },
      body: JSON.stringify({ error: { code: 'unavailable', message: '32 reports are waiting to run; try again in 5 s' } }),
    })
    : route.continue()));
  await page.clock.fastForward(31 * 1000);
  await page.waitForFunction(() => /could not be read again/.test(document.querySelector('#notice').textContent));
  assert.match(await page.textContent('#notice'), /32 reports are waiting to run/);
  assert.equal(await page.locator('#claim').count(), 1);
  assert.match(await page.textContent('#callbacks'), /Refreshing Rik/);
  assert.equal(await page.locator('text=Could not load this page').count(), 0);

  // The next refresh reads it again, and the notice goes.
  refusing = false;
  await call(keys.manager, 'POST', `/v1/callbacks/${(await call(keys.manager, 'GET', '/v1/callbacks?touchpoint=ui-refresh')).body.callbacks[0].id}/cancel`);
  await page.clock.fastForward(31 * 1000);
  await page.waitForFunction(() => !/Refreshing Rik/.test(document.querySelector('#main').textContent));
  assert.equal(await page.isHidden('#notice'), true);
  assert.equal(await page.locator('#claim').count(), 1);
  await done(page);
});

test('the queue\'s figures show the median wait for a first call', async () => {
  const low = await answer('ui-median', 4);
  const claimed = await call(keys.agent, 'POST', '/v1/callbacks/claim', { touchpoint: 'ui-median' });
  assert.equal(claimed.body.id, low.callback.id);
  const r = await call(keys.agent, 'POST', `/v1/callbacks/${low.callback.id}/complete`, { outcome: 'reached' });
  assert.equal(r.status, 200, r.text);
  const stats = (await call(keys.agent, 'GET', '/v1/callbacks/stats')).body;
  assert.equal(typeof stats.median_minutes_to_first_call, 'number');

  const page = await signedIn('agent');
  await page.waitForSelector('#stats');
  const card = page.locator('#stats .stat', { hasText: 'first call' });
  assert.equal(await card.count(), 1);
  assert.equal(await card.locator('.value').textContent(), `${stats.median_minutes_to_first_call.toFixed(1)} min`);
  await done(page);
});

// An agent on the phone reads first what the customer said last: the answer that joined
// the call most recently, as the history below it and the Answers page read newest first.
test('a callback\'s answers read newest first, as the customer\'s history does', async () => {
  const minutesAgo = (m) => new Date(Date.now() - m * 60000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const customer = { id: 'C-twice', name: 'Twice Tineke', phone: '+31612340444' };
  const first = await answer('ui-newest', 6, { customer, comment: 'Slow to answer', answered_at: minutesAgo(30) });
  const second = await answer('ui-newest', 2, { customer, comment: 'Still not paid', answered_at: minutesAgo(1) });
  assert.equal(second.callback.id, first.callback.id);
  // The API lists them oldest first; the page turns them round.
  assert.deepEqual((await stored(first.callback.id)).surveys.map((s) => s.comment), ['Slow to answer', 'Still not paid']);

  const page = await signedIn('agent', `#/callbacks/${first.callback.id}`);
  await page.waitForSelector('#surveys .comment');
  assert.deepEqual(await page.locator('#surveys .comment').allTextContents(), ['Still not paid', 'Slow to answer']);
  assert.deepEqual(await page.locator('#surveys .score').allTextContents(), ['2', '6']);
  await done(page);
  assert.equal((await call(keys.manager, 'POST', `/v1/callbacks/${first.callback.id}/cancel`)).status, 200);
});

test('an agent who takes a touchpoint\'s calls gets that touchpoint\'s next call from a call\'s page', async () => {
  const first = await answer('ui-team', 4);
  const second = await answer('ui-team', 6);
  // Lower, so first in the queue for any touchpoint: not this team's.
  const other = await answer('ui-other-team', 0);
  const page = await signedIn('agent');
  await page.fill('#claim-touchpoint', 'ui-team');
  await page.click('#claim button[type=submit]');
  await page.waitForURL(new RegExp(`#/callbacks/${first.callback.id}$`));
  await page.waitForSelector('#complete');
  await page.selectOption('#outcome', 'reached');
  await page.click('#complete button[type=submit]');
  await page.waitForSelector('#next-call');
  assert.equal(await page.textContent('#next-call'), 'Call next customer (ui-team)');
  await page.click('#next-call');
  await page.waitForURL(new RegExp(`#/callbacks/${second.callback.id}$`));
  await page.waitForSelector('#complete');
  assert.equal((await stored(other.callback.id)).status, 'queued');
  // Back on the Calls page the touchpoint is still the one asked for.
  await page.click('#nav a[data-view=calls]');
  await page.waitForSelector('#claim');
  assert.equal(await page.inputValue('#claim-touchpoint'), 'ui-team');
  await done(page);
  for (const id of [second.callback.id, other.callback.id]) {
    assert.equal((await call(keys.manager, 'POST', `/v1/callbacks/${id}/cancel`)).status, 200);
  }
});

test('a link from a phone alert opens its callback after signing in; call later needs its time', async () => {
  const survey = await answer('ui-link', 6, { comment: 'Nobody told me the policy started' });
  const claimed = await call(keys.agent, 'POST', '/v1/callbacks/claim', { touchpoint: 'ui-link' });
  assert.equal(claimed.body.id, survey.callback.id);

  // In a browser away from UTC: the time is the agent's local time.
  const page = await signedIn('agent', `#/callbacks/${survey.callback.id}`, { timezoneId: 'Asia/Kolkata' });
  await page.waitForSelector('#customer-name');
  assert.equal(await page.textContent('#status'), 'claimed');
  assert.equal(await page.textContent('#surveys .comment'), 'Nobody told me the policy started');
  assert.match(await page.textContent('label[for=retry-at]'), /Asia\/(Kolkata|Calcutta)/); // ICU's name for it varies

  // Without its time the browser asks for it: nothing is sent.
  await page.selectOption('#outcome', 'call_later');
  await page.click('#complete button[type=submit]');
  assert.equal(await page.evaluate(() => document.querySelector('#retry-at').validity.valueMissing), true);
  assert.equal((await stored(survey.callback.id)).status, 'claimed');

  const later = Math.floor((Date.now() + 2 * 86400 * 1000) / 60000) * 60000;
  const local = new Date(later + 330 * 60000).toISOString().slice(0, 16); // Kolkata: UTC+05:30, no DST
  const expected = new Date(later).toISOString().replace(/\.\d{3}Z$/, 'Z');
  await page.fill('#retry-at', local);
  await page.click('#complete button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#status')?.textContent === 'queued');
  const now = await stored(survey.callback.id);
  assert.equal(now.status, 'queued');
  assert.equal(now.due_at, expected);
  assert.equal(now.attempts, 0);
  await done(page);
});

// A browser without workers: the page times the lease's renewals with its own timers, which
// page.clock drives (it does not reach into a worker).
async function withoutWorkers(page) {
  await page.addInitScript(() => { delete window.Worker; });
}

test('an open call keeps its lease while its page is open, on a PC whose clock is behind', async () => {
  const survey = await answer('ui-lease', 2);
  const page = await newPage();
  await withoutWorkers(page);
  // Five minutes behind npsd: the lease (1m) is timed by the server's clock all the same.
  await page.clock.install({ time: Date.now() - 5 * 60 * 1000 });
  const beats = [];
  page.on('request', (request) => { if (request.url().endsWith('/heartbeat')) beats.push(request.url()); });
  await signIn(page, keys.agent);
  await page.fill('#claim-touchpoint', 'ui-lease');
  await page.click('#claim button[type=submit]');
  await page.waitForSelector('#complete');
  const first = (await stored(survey.callback.id)).lease_expires_at;

  await sleep(1100); // leases are kept to the second
  const opened = beats.length; // the one that told the page the call is its own
  // A third of the minute left: renewed within 25 s (not at 60, as a clock read naively
  // would say 6 minutes are left).
  await page.clock.fastForward(25 * 1000);
  let renewed = first;
  for (let i = 0; i < 100 && renewed === first; i++) {
    await sleep(50);
    renewed = (await stored(survey.callback.id)).lease_expires_at;
  }
  assert.ok(Date.parse(renewed) > Date.parse(first), `lease ${first} was not renewed (${renewed})`);
  assert.ok(beats.length > opened, 'no renewal within 25 s');

  // Taken back while the page is open (a manager cancels it): the next renewal finds it
  // gone, and the page says so and stops offering the form.
  // What the agent had typed stays on the page, to be copied.
  await page.selectOption('#outcome', 'call_later');
  await page.fill('#retry-at', '2030-01-02T14:30');
  await page.fill('#notes', 'Customer wants a call after lunch');
  assert.equal((await call(keys.manager, 'POST', `/v1/callbacks/${survey.callback.id}/cancel`)).status, 200);
  await page.clock.fastForward(25 * 1000);
  await page.waitForFunction(() => /no longer yours/.test(document.querySelector('#notice').textContent));
  await page.waitForFunction(() => document.querySelector('#status')?.textContent === 'cancelled');
  assert.equal(await page.locator('#complete').count(), 0);
  assert.match(await page.textContent('#draft'), /Customer wants a call after lunch/);
  assert.match(await page.textContent('#draft'), /Outcome: Call later, call again at 2030-01-02 14:30/);
  await done(page);
});

// Chromium slows a hidden tab's timers to once a minute, too seldom for a 1m lease. The test
// stands the page's timers still (the clock paused) and tells it that the tab is hidden,
// then shown, as the browser does.
async function setHidden(page, hidden) {
  await page.evaluate((h) => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => h });
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (h ? 'hidden' : 'visible') });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

test('a call in a background tab whose timers stand still renews its lease when hidden and shown, and says when it ran out', async () => {
  const survey = await answer('ui-hidden', 2);
  const id = survey.callback.id;
  const page = await newPage();
  await withoutWorkers(page); // where no worker times it, as the page's timers stand still
  await page.clock.install();
  const beats = [];
  page.on('request', (request) => { if (request.url().endsWith('/heartbeat')) beats.push(request.url()); });
  await signIn(page, keys.agent);
  await page.fill('#claim-touchpoint', 'ui-hidden');
  await page.click('#claim button[type=submit]');
  await page.waitForSelector('#complete');
  // No timer fires from here on, as in a tab that Chromium throttles.
  await page.clock.pauseAt(Date.now() + 1000);
  await sleep(1100); // leases are kept to the second
  const opened = beats.length;
  const first = (await stored(id)).lease_expires_at;

  // The lease's end once it moved past before, within 5 s.
  const renewedAfter = async (before, what) => {
    let now = before;
    for (let i = 0; i < 100 && now === before; i++) {
      await sleep(50);
      now = (await stored(id)).lease_expires_at;
    }
    assert.ok(Date.parse(now) > Date.parse(before), `lease ${before} was not renewed ${what} (${now})`);
    return now;
  };

  // Sent to the background: renewed at once, a whole lease to last there.
  await setHidden(page, true);
  await renewedAfter(first, 'on going to the background');
  assert.equal(beats.length, opened + 1);
  await sleep(1100);
  const hiddenAt = (await stored(id)).lease_expires_at;

  // Back in front: renewed at once, without waiting for its timer.
  await setHidden(page, false);
  await renewedAfter(hiddenAt, 'on coming back');
  assert.equal(beats.length, opened + 2);
  assert.equal(await page.locator('#complete').count(), 1);

  // In the background past its lease (three minutes by the page's clock): npsd gave the call
  // back to the queue meanwhile. Shown again, the page says so, and why.
  await setHidden(page, true);
  for (let i = 0; i < 100 && beats.length < opened + 3; i++) await sleep(50);
  await sleep(200); // its answer, too
  assert.equal((await call(keys.agent, 'POST', `/v1/callbacks/${id}/release`)).status, 200);
  await page.clock.setSystemTime(Date.now() + 3 * 60 * 1000);
  await setHidden(page, false);
  await page.waitForFunction(() => /ran out while its tab was in the background/.test(document.querySelector('#notice').textContent));
  await page.waitForFunction(() => document.querySelector('#status')?.textContent === 'queued');
  assert.equal(await page.locator('#complete').count(), 0);
  await done(page);
});

// The page's timers stand still here (page.clock paused) while the tab says it is hidden, as
// Chromium's throttling does for minutes at a time; a worker's timers are not throttled, and
// page.clock does not reach them. So a renewal can come from the worker alone.
test('a call in a hidden tab whose page timers stand still keeps its lease, timed by a worker at a third of it', async () => {
  const survey = await answer('ui-worker', 2);
  const id = survey.callback.id;
  const page = await newPage();
  // Five minutes behind npsd, too: the wait is a third of the lease by npsd's clock.
  const behind = 5 * 60 * 1000;
  await page.clock.install({ time: Date.now() - behind });
  const beats = [];
  page.on('request', (request) => { if (request.url().endsWith('/heartbeat')) beats.push(Date.now()); });
  await signIn(page, keys.agent);
  await page.fill('#claim-touchpoint', 'ui-worker');
  await page.click('#claim button[type=submit]');
  await page.waitForSelector('#complete');
  await page.clock.pauseAt(Date.now() - behind + 1000);
  await sleep(1100); // leases are kept to the second

  // Sent to the background: renewed at once, as before.
  const opened = beats.length;
  await setHidden(page, true);
  for (let i = 0; i < 100 && beats.length === opened; i++) await sleep(50);
  assert.equal(beats.length, opened + 1);
  await sleep(500); // its answer, which sets the next renewal
  const hiddenAt = (await stored(id)).lease_expires_at;
  const sent = beats.length;
  const since = beats[sent - 1];

  // Then, with no page timer firing and no visibility change, renewed again within a third
  // of the minute left (20 s; 60 s if the page's clock, 5 minutes behind, were believed).
  for (let i = 0; i < 700 && beats.length === sent; i++) await sleep(50);
  assert.ok(beats.length > sent, `no renewal ${Math.round((Date.now() - since) / 1000)} s after the tab was hidden`);
  const waited = beats[sent] - since;
  assert.ok(waited >= 10 * 1000 && waited <= 30 * 1000, `renewed after ${waited} ms, not about 20 s`);
  let renewed = hiddenAt;
  for (let i = 0; i < 100 && renewed === hiddenAt; i++) {
    await sleep(50);
    renewed = (await stored(id)).lease_expires_at;
  }
  assert.ok(Date.parse(renewed) > Date.parse(hiddenAt), `lease ${hiddenAt} was not renewed (${renewed})`);
  assert.equal(await page.locator('#complete').count(), 1);
  assert.equal(await page.isHidden('#notice'), true);
  assert.equal(page.workers().length, 1);
  await done(page);
});

test('a double click takes one call; a claimed call is read-only to whoever does not hold it', async () => {
  const first = await answer('ui-double', 1);
  const second = await answer('ui-double', 1);
  const page = await signedIn('agent');
  // Slow answers, and a second click well after the first: still one claim.
  await page.route('**/v1/callbacks/**', async (route) => {
    await sleep(300);
    await route.continue();
  });
  await page.fill('#claim-touchpoint', 'ui-double');
  await page.click('#claim button[type=submit]');
  // After the claim's answer (300 ms), before the call's page (two more slow answers).
  await sleep(450);
  await page.click('#claim button[type=submit]', { force: true, timeout: 1000 }).catch(() => {});
  await page.waitForSelector('#complete');
  await page.unroute('**/v1/callbacks/**');
  const claimed = (await call(keys.manager, 'GET', '/v1/callbacks?status=claimed&touchpoint=ui-double')).body.callbacks;
  assert.deepEqual(claimed.map((cb) => cb.id), [first.callback.id]);
  assert.equal((await stored(second.callback.id)).status, 'queued');
  // Back on the list (a tab closed mid-call, say), the agent finds the call again.
  await page.click('#nav a[data-view=calls]');
  await page.waitForSelector('#mine');
  assert.equal(await page.locator(`#mine a[href="#/callbacks/${first.callback.id}"]`).count(), 1);
  await done(page);

  const manager = await signedIn('manager', `#/callbacks/${first.callback.id}`);
  await manager.waitForSelector('#customer-name');
  assert.equal(await manager.textContent('#status'), 'claimed');
  assert.equal(await manager.locator('#complete').count(), 0);
  assert.equal(await manager.locator('#release').count(), 0);
  assert.equal(await manager.locator('#cancel').count(), 1);
  await done(manager);

  const other = createKey('agent', 'otto');
  const otto = await newPage();
  await signIn(otto, other, `#/callbacks/${first.callback.id}`);
  await otto.waitForSelector('#customer-name');
  assert.equal(await otto.locator('#complete').count(), 0);
  assert.equal(await otto.locator('#release').count(), 0);
  const held = await stored(first.callback.id);
  assert.equal(held.claimed_by, 'anna');
  await done(otto);

  // A second key also named anna: the call is not among its calls in progress, and its page
  // is read-only, saying who holds it, with no word of a lease it never held.
  const namesake = await newPage();
  await signIn(namesake, createKey('agent', 'anna'));
  await namesake.waitForSelector('#claim');
  assert.equal(await namesake.locator(`#mine a[href="#/callbacks/${first.callback.id}"]`).count(), 0);
  await namesake.goto(`${base}/ui/#/callbacks/${first.callback.id}`);
  await namesake.waitForSelector('#customer-name');
  assert.equal(await namesake.locator('#complete').count(), 0);
  assert.equal(await namesake.locator('#release').count(), 0);
  assert.match(await namesake.textContent('#notice'), /Another key also named anna holds this call/);
  assert.doesNotMatch(await namesake.textContent('#notice'), /no longer yours/);
  await done(namesake);
});

test('an agent hands a call back; a manager cancels one; an agent may not', async () => {
  const survey = await answer('ui-release', 4);
  const agent = await signedIn('agent');
  await agent.fill('#claim-touchpoint', 'ui-release');
  await agent.click('#claim button[type=submit]');
  await agent.waitForSelector('#release');
  await agent.click('#release');
  await agent.waitForSelector('#claim');
  assert.match(await agent.textContent('#notice'), /Released/);
  assert.equal((await stored(survey.callback.id)).status, 'queued');

  // An agent is not offered what only managers may do; the API refuses it anyway.
  await agent.goto(`${base}/ui/#/callbacks/${survey.callback.id}`);
  await agent.waitForSelector('#customer-name');
  assert.equal(await agent.locator('#cancel').count(), 0);
  assert.equal((await call(keys.agent, 'POST', `/v1/callbacks/${survey.callback.id}/cancel`)).status, 403);
  await done(agent);

  // Held by an agent again when a manager cancels it: the question says whose call ends.
  assert.equal((await call(keys.agent, 'POST', '/v1/callbacks/claim', { touchpoint: 'ui-release' })).body.id,
    survey.callback.id);
  const manager = await signedIn('manager', `#/callbacks/${survey.callback.id}`);
  await manager.waitForSelector('#cancel');
  const posts = [];
  manager.on('request', (request) => { if (request.method() === 'POST') posts.push(request.url()); });
  const dismissed = new Promise((resolve) => manager.once('dialog', (dialog) => {
    resolve(dialog.message());
    dialog.dismiss();
  }));
  await manager.click('#cancel');
  assert.match(await dismissed, /Nobody will call the customer\. anna holds it now/);
  await manager.waitForFunction(() => !document.querySelector('#cancel').disabled);
  assert.deepEqual(posts, []);
  assert.equal((await stored(survey.callback.id)).status, 'claimed');
  manager.once('dialog', (dialog) => dialog.accept());
  await manager.click('#cancel');
  await manager.waitForFunction(() => document.querySelector('#status')?.textContent === 'cancelled');
  assert.equal((await stored(survey.callback.id)).status, 'cancelled');
  await done(manager);
});

test('a manager reads NPS by touchpoint, its trend and the improvements; an agent may not', async () => {
  await answer('ui-renewal', 10);
  await answer('ui-renewal', 9);
  const low = await answer('ui-renewal', 3, { comment: 'Price went up' });
  const claimed = await call(keys.agent, 'POST', '/v1/callbacks/claim', { touchpoint: 'ui-renewal' });
  assert.equal(claimed.body.id, low.callback.id);
  const completed = await call(keys.agent, 'POST', `/v1/callbacks/${low.callback.id}/complete`,
    { outcome: 'reached', improvements: [{ area: 'service', text: 'Explain a higher renewal price' }] });
  assert.equal(completed.status, 200, completed.text);

  const page = await signedIn('manager');
  await page.waitForSelector('#callbacks, .empty');
  assert.equal(await page.textContent('#who'), 'mark (manager)');
  assert.equal(await page.locator('#claim').count(), 0); // managers do not take calls
  await page.click('#nav a[data-view=reports]');
  await page.waitForSelector('#by-touchpoint');
  const overall = (await call(keys.manager, 'GET', '/v1/nps')).body;
  assert.equal(await page.textContent('#nps'), overall.nps.toFixed(1));
  assert.equal(await page.textContent('#responses'), String(overall.responses));

  const row = page.locator('#by-touchpoint tr', { hasText: 'ui-renewal' });
  assert.deepEqual(await row.locator('td').allTextContents(), ['ui-renewal', '33.3', (await call(keys.manager,
    'GET', '/v1/nps?touchpoint=ui-renewal')).body.margin_of_error.toFixed(1), '3', '2', '0', '1']);
  // Every answer is from the last minutes: the trend per day holds them all.
  const days = (await call(keys.manager, 'GET', '/v1/nps?group_by=day')).body.groups;
  const counts = await page.locator('#trend tbody tr td:nth-child(4)').allTextContents();
  assert.deepEqual(counts, days.map((d) => String(d.responses)));
  assert.equal(await page.locator('#trend-chart rect').count(), days.length);
  assert.match(await page.textContent('#improvement-list'), /Explain a higher renewal price/);
  assert.match(await page.textContent('#by-area'), /1 service/);

  await page.selectOption('#period', '7');
  await page.waitForURL(/#\/reports\?days=7$/);
  await page.waitForFunction(() => document.querySelector('#period')?.value === '7');

  // One touchpoint's trend and improvements.
  await page.selectOption('#report-touchpoint', 'ui-renewal');
  await page.waitForURL(/#\/reports\?days=7&touchpoint=ui-renewal$/);
  await page.waitForFunction(() => /Trend of ui-renewal/.test(document.querySelector('#main').textContent));
  const trendCounts = await page.locator('#trend tbody tr td:nth-child(4)').allTextContents();
  assert.equal(trendCounts.reduce((sum, n) => sum + Number(n), 0), 3);
  const ideas = (await call(keys.manager, 'GET', '/v1/improvements?touchpoint=ui-renewal')).body;
  assert.match(await page.textContent('#main'), new RegExp(`What to improve of ui-renewal \\(${ideas.counts.total} recorded\\)`));
  assert.deepEqual(await page.locator('#improvement-list tbody td:nth-child(4)').allTextContents(),
    ideas.improvements.map((i) => i.text));
  await done(page);

  const agent = await signedIn('agent', '#/reports');
  await agent.waitForFunction(() => /Reports are for managers/.test(document.querySelector('#main').textContent));
  await done(agent);
});

// A manager looks for the touchpoint whose process needs fixing: the counts per touchpoint
// and per area there, as GET /v1/improvements gives them, beside the counts per area.
test('a manager sees what was recorded to improve per touchpoint and area, the touchpoint with most first', async () => {
  const record = async (touchpoint, improvements) => {
    const low = await answer(touchpoint, 2);
    const claimed = await call(keys.agent, 'POST', '/v1/callbacks/claim', { touchpoint });
    assert.equal(claimed.body.id, low.callback.id);
    const r = await call(keys.agent, 'POST', `/v1/callbacks/${low.callback.id}/complete`, { outcome: 'reached', improvements });
    assert.equal(r.status, 200, r.text);
  };
  await record('ui-counts-claim', [{ area: 'process', text: 'Pay out sooner' },
    { area: 'process', text: 'Fewer forms' }, { area: 'communication', text: 'Say when it is paid' }]);
  await record('ui-counts-sales', [{ area: 'product', text: 'A cheaper plan' }]);

  const page = await signedIn('manager', '#/reports?days=7');
  await page.waitForSelector('#improvements-by-touchpoint');
  const table = page.locator('#improvements-by-touchpoint');
  assert.deepEqual(await table.locator('th').allTextContents(),
    ['Touchpoint', 'All', 'process', 'communication', 'service', 'product', 'other']);
  const rows = await table.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
  const row = (touchpoint) => rows.find((r) => r[0] === touchpoint);
  assert.deepEqual(row('ui-counts-claim'), ['ui-counts-claim', '3', '2', '1', '0', '0', '0']);
  assert.deepEqual(row('ui-counts-sales'), ['ui-counts-sales', '1', '0', '0', '0', '1', '0']);
  // Every touchpoint the API counts in the period, the most first.
  const week = new Date(Date.now() - 7 * 86400 * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const counts = (await call(keys.manager, 'GET', `/v1/improvements?from=${week}`)).body.counts;
  assert.deepEqual(rows.map((r) => r[0]).sort(), Object.keys(counts.by_touchpoint).sort());
  const totals = rows.map((r) => Number(r[1]));
  assert.deepEqual(totals, [...totals].sort((a, b) => b - a));
  assert.ok(rows.indexOf(row('ui-counts-claim')) < rows.indexOf(row('ui-counts-sales')));

  // Narrowed to one touchpoint: its row alone.
  await page.selectOption('#report-touchpoint', 'ui-counts-sales');
  await page.waitForFunction(() => /What to improve of ui-counts-sales/.test(document.querySelector('#main').textContent));
  assert.deepEqual(await page.locator('#improvements-by-touchpoint tbody tr').evaluateAll((trs) => trs.map((tr) => tr.cells[0].textContent)),
    ['ui-counts-sales']);
  await done(page);
});

test('a long unbroken name wraps in the queue: every column stays in view', async () => {
  const survey = await answer('ui-long', 5, { customer: { id: 'C-long', name: 'N'.repeat(200), phone: '+31612340888' } });
  const page = await signedIn('agent', '', { viewport: { width: 1280, height: 800 } });
  await page.waitForFunction(() => /N{200}/.test(document.querySelector('#callbacks')?.textContent || ''));
  const [wide, room] = await page.evaluate(() => {
    const wrapper = document.querySelector('#callbacks').parentElement;
    return [wrapper.scrollWidth, wrapper.clientWidth];
  });
  assert.ok(wide <= room, `the queue is ${wide} px wide in ${room}`);
  await done(page);
  // Out of the queue the other tests take from.
  assert.equal((await call(keys.manager, 'POST', `/v1/callbacks/${survey.callback.id}/cancel`)).status, 200);
});

test('the trend leaves a period without answers empty in its place, on a scale', async () => {
  // At noon UTC, fourteen days apart: fourteen local days apart in callbacks.timezone too,
  // whatever the hour the test runs at and across a change of summer time.
  const day = 86400 * 1000;
  const noon = (daysAgo) => new Date(Math.floor(Date.now() / day - daysAgo) * day + day / 2).toISOString()
    .replace(/\.\d{3}Z$/, 'Z');
  await answer('ui-gaps', 9, { answered_at: noon(15) });
  await answer('ui-gaps', 10, { answered_at: noon(1) });
  const page = await signedIn('manager', '#/reports?days=30&touchpoint=ui-gaps');
  await page.waitForSelector('#trend-chart rect');
  const bars = await page.locator('#trend-chart rect').evaluateAll((rects) =>
    rects.map((r) => [r.getAttribute('data-period'), Number(r.getAttribute('x')), Number(r.getAttribute('width'))]));
  assert.equal(bars.length, 2);
  // Two answers fourteen days apart: thirteen empty days between their bars.
  const step = bars[0][2] / 0.7;
  assert.equal(Math.round((bars[1][1] - bars[0][1]) / step), 14);
  assert.deepEqual(await page.locator('#trend-chart text').allTextContents(), ['+100', '0', '-100', bars[0][0], bars[1][0]]);
  await done(page);
});

// Whether key gets a 429 within a quick burst of n reads.
async function limited(key, n) {
  const replies = await Promise.all(Array.from({ length: n }, () => call(key, 'GET', '/v1/me')));
  return replies.some((r) => r.status === 429);
}

// Runs work while npsd's server.rate_limit is one a second (bursts of two), reloaded with a
// SIGHUP, and sets it back after.
async function withRateLimit(work) {
  const conf = join(dir, 'npsd.conf');
  const plain = readFileSync(conf, 'utf8');
  const reload = async (text, want) => {
    writeFileSync(conf, text);
    npsd.kill('SIGHUP');
    for (let i = 0; i < 50 && await limited(createKey('manager', 'burst'), 5) !== want; i++) await sleep(100);
    assert.equal(await limited(createKey('manager', 'burst'), 5), want, 'the reload did not take');
  };
  await reload(plain.replace('[server]\n', '[server]\nrate_limit = 1\n'), true);
  try {
    await work();
  } finally {
    await reload(plain, false);
  }
}

test('under a tight rate limit a page waits its turn instead of failing', async () => {
  await withRateLimit(async () => {
    // One a second, bursts of two: the sign-in takes one, the reports page reads three at once.
    const page = await newPage();
    await signIn(page, createKey('manager', 'patient'), '#/reports');
    await page.waitForSelector('#by-touchpoint', { timeout: 20000 });
    assert.doesNotMatch(await page.textContent('#notice'), /rate_limit|Could not load/);
    await done(page);
  });
});

// The reports page asks three reports at once, each waiting its turn on npsd's long-report
// queue. One refused (a full queue's 503, a key's share's 429, both with Retry-After): the
// page drops the other two (npsd then skips them), says once when it asks again, and asks
// again, all three, once, after the Retry-After; refused again, it offers Try again.
test('a reports page refused for a busy npsd drops its other reports, says when it asks again, and asks again once', async () => {
  await answer('ui-busy', 9);
  const page = await signedIn('manager');
  await page.waitForSelector('#stats');
  const rounds = []; // the reports asked, in order: {at, url}
  const aborted = [];
  page.on('requestfailed', (request) => {
    if (/\/v1\/(nps|improvements)\?/.test(request.url())) aborted.push(request.url());
  });
  // The next `refuse` replies (each {status, retryAfter, message}) refuse the report by
  // touchpoint, once the other two are on their way (held here, as by a long queue).
  const refuse = [];
  let held = [];
  let refusing = null;
  const releaseWhenThree = () => {
    if (!refusing || held.length < 2) return;
    const { route, reply } = refusing;
    refusing = null;
    route.fulfill({
      status: reply.status,
      headers: { 'Retry-After': String(reply.retryAfter), 'Content-Type': 'application/json' },
      body: JSON.stringify({ error: { code: reply.status === 429 ? 'rate_limited' : 'unavailable', message: reply.message } }),
    });
  };
  await page.route(/\/v1\/(nps|improvements)\?/, async (route) => {
    const url = route.request().url();
    rounds.push({ at: Date.now(), url });
    const byTouchpoint = /group_by=touchpoint/.test(url);
    if (refuse.length && byTouchpoint) {
      refusing = { route, reply: refuse.shift() };
    } else if (refusing || (refuse.length && !byTouchpoint)) {
      held.push(route);
    } else {
      await route.continue();
      return;
    }
    releaseWhenThree();
  });

  // Refused once, by a full queue: asked again after its 2 s, and drawn.
  refuse.push({ status: 503, retryAfter: 2, message: '32 reports are waiting to run; try again in 2 s' });
  await page.click('#nav a[data-view=reports]');
  await page.waitForFunction(() => /asks again in 2 s/.test(document.querySelector('#notice').textContent));
  const refusedAt = Date.now();
  assert.match(await page.textContent('#notice'), /32 reports are waiting to run/);
  assert.equal(rounds.length, 3);
  for (let i = 0; i < 40 && aborted.length < 2; i++) await sleep(50);
  assert.equal(aborted.length, 2, `the other reports were not dropped: ${aborted.join(', ')}`);
  held.forEach((route) => route.abort().catch(() => {}));
  held = [];
  await page.waitForSelector('#by-touchpoint', { timeout: 8000 });
  assert.equal(rounds.length, 6);
  const waited = rounds[3].at - refusedAt;
  assert.ok(waited >= 1500 && waited <= 4000, `asked again after ${waited} ms, not after the 2 s of Retry-After`);
  assert.equal(await page.isHidden('#notice'), true);
  assert.match(await page.textContent('#by-touchpoint'), /ui-busy/);

  // Refused by the key's share with a wait longer than the console waits in place, then by
  // a full queue: the page waits the first whole, asks once more, and then waits for its user.
  refuse.push({ status: 429, retryAfter: 6, message: '8 reports of this key are waiting to run; try again in 6 s' },
    { status: 503, retryAfter: 1, message: '32 reports are waiting to run; try again in 1 s' });
  const before = rounds.length;
  await page.selectOption('#period', '7');
  await page.waitForFunction(() => /asks again in 6 s/.test(document.querySelector('#notice').textContent));
  const limitedAt = Date.now();
  for (let i = 0; i < 40 && aborted.length < 4; i++) await sleep(50);
  assert.equal(aborted.length, 4);
  held.forEach((route) => route.abort().catch(() => {}));
  held = [];
  assert.equal(rounds.length, before + 3);
  await page.waitForSelector('text=Could not load this page', { timeout: 10000 });
  assert.ok(rounds[before + 3].at - limitedAt >= 5500, 'asked again before the 6 s of Retry-After');
  assert.match(await page.textContent('#notice'), /32 reports are waiting to run/);
  held.forEach((route) => route.abort().catch(() => {}));
  await sleep(2500);
  assert.equal(rounds.length, before + 6, 'asked again a second time by itself');
  await page.unroute(/\/v1\/(nps|improvements)\?/);
  await page.click('#main button');
  await page.waitForSelector('#by-touchpoint');
  await done(page);
});

// A page's request refused with a 429 is asked again after the whole Retry-After (not after
// at most 5 s, before npsd said it would take it), and the page says when; a wait longer
// than a minute (a proxy's) is not waited out: the page says what was answered, with Try again.
test('a page refused with a 429 asks again after its whole Retry-After and says when; one past a minute is not waited', async () => {
  const page = await newPage();
  const asked = [];
  const refusals = []; // the Retry-After of the next refusals of the queue's figures
  await page.route('**/v1/callbacks/stats', (route) => {
    asked.push(Date.now());
    const wait = refusals.shift();
    if (wait === undefined) return route.continue();
    return route.fulfill({
      status: 429,
      headers: { 'Retry-After': String(wait), 'Content-Type': 'application/json' },
      body: JSON.stringify({ error: { code: 'rate_limited', message: 'too many requests for this key' } }),
    });
  });
  refusals.push(8);
  await signIn(page, keys.agent);
  await page.waitForFunction(() => /trying again in 8 s/.test(document.querySelector('#notice').textContent));
  assert.match(await page.textContent('#notice'), /too many requests for this key/);
  assert.equal(await page.isVisible('#notice'), true);
  await page.waitForSelector('#stats', { timeout: 15000 });
  assert.equal(asked.length, 2);
  assert.ok(asked[1] - asked[0] >= 7500, `asked again ${asked[1] - asked[0]} ms after a Retry-After of 8 s`);
  assert.equal(await page.isHidden('#notice'), true);

  refusals.push(120);
  await page.evaluate(() => { location.hash = '#/calls?status=queued'; });
  await page.waitForSelector('text=Could not load this page', { timeout: 3000 });
  assert.match(await page.textContent('#notice'), /too many requests for this key/);
  await sleep(1000);
  assert.equal(asked.length, 3, 'asked again before the 120 s of Retry-After');
  await page.click('#main button');
  await page.waitForSelector('#stats');
  await done(page);
});

// A renewal refused with a 429 is asked again after its Retry-After, timed by the lease's
// worker as the renewals are: on the page's timer, which Chromium may fire a minute late in
// a hidden tab (page.clock paused here, as in the tests above), it could outlast the lease.
test('a renewal rate limited in a hidden tab whose page timers stand still is asked again on time, timed by the worker', async () => {
  const survey = await answer('ui-limited', 2);
  const id = survey.callback.id;
  const key = createKey('agent', 'limited');
  await withRateLimit(async () => {
    const page = await newPage();
    await page.clock.install();
    const beats = []; // heartbeats sent and answered, in order, with when the test saw them
    page.on('request', (request) => {
      if (request.url().endsWith('/heartbeat')) beats.push({ sent: Date.now() });
    });
    page.on('response', async (response) => {
      if (!response.url().endsWith('/heartbeat')) return;
      beats.push({ status: response.status(), retryAfter: await response.headerValue('retry-after'), at: Date.now() });
    });
    // Once armed, the next heartbeat finds the key's burst spent by the key's own reads, so
    // that npsd answers it 429 itself.
    let armed = false;
    await page.route('**/heartbeat', async (route) => {
      if (armed) {
        armed = false;
        for (let i = 0; i < 20 && !await limited(key, 3); i++) await sleep(10);
      }
      await route.continue();
    });
    await signIn(page, key);
    await page.fill('#claim-touchpoint', 'ui-limited');
    await page.click('#claim button[type=submit]');
    await page.waitForSelector('#complete', { timeout: 20000 });
    await page.clock.pauseAt(Date.now() + 1000);
    await sleep(1100); // leases are kept to the second
    const first = (await stored(id)).lease_expires_at;

    // Sent to the background: the renewal that goes at once is refused for the rate.
    const opened = beats.length;
    armed = true;
    await setHidden(page, true);
    for (let i = 0; i < 100 && !beats.slice(opened).some((b) => b.status); i++) await sleep(50);
    const refused = beats.slice(opened).find((b) => b.status);
    assert.ok(refused, 'the renewal on going to the background got no answer');
    assert.equal(refused.status, 429);
    const wait = Number(refused.retryAfter) * 1000;
    assert.ok(wait >= 1000 && wait <= 5000, `Retry-After: ${refused.retryAfter}`);

    // Asked again after Retry-After, with no page timer firing.
    const again = () => beats.slice(beats.indexOf(refused) + 1).find((b) => b.sent);
    for (let i = 0; i < 200 && !again(); i++) await sleep(50);
    assert.ok(again(), `not asked again ${Math.round((Date.now() - refused.at) / 1000)} s after a 429 with Retry-After: ${refused.retryAfter}`);
    const late = again().sent - refused.at;
    assert.ok(late >= wait - 250 && late <= wait + 3000, `asked again ${late} ms after the 429, not after ${wait} ms`);
    const answered = () => beats.slice(beats.indexOf(again()) + 1).find((b) => b.status);
    for (let i = 0; i < 100 && !answered(); i++) await sleep(50);
    assert.equal(answered()?.status, 200);
    let renewed = first;
    for (let i = 0; i < 100 && renewed === first; i++) {
      await sleep(50);
      renewed = (await stored(id)).lease_expires_at;
    }
    assert.ok(Date.parse(renewed) > Date.parse(first), `lease ${first} was not renewed (${renewed})`);
    assert.equal(await page.locator('#complete').count(), 1);
    assert.equal(await page.isHidden('#notice'), true);
    assert.equal(page.workers().length, 1); // the lease's worker, no second one
    await done(page);
  });
});

test('an address with a filter the API refuses offers the page without it', async () => {
  const page = await signedIn('agent', '#/calls?touchpoint=BAD!');
  await page.waitForSelector('#unfiltered');
  assert.match(await page.textContent('#notice'), /touchpoint/);
  await page.click('#unfiltered');
  await page.waitForSelector('#claim');
  assert.equal(await page.locator('#unfiltered').count(), 0);
  await done(page);
});

// ---------- webhooks ----------

// Whether body was signed with secret as Standard Webhooks sign: HMAC-SHA256 over
// "id.timestamp.body" with the secret's base64 part decoded.
function signedWith(secret, request) {
  const { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': signature } = request.headers;
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${request.body}`).digest('base64');
  return signature.split(' ').includes(`v1,${expected}`);
}

async function webhooksNamed(description) {
  const list = await call(keys.manager, 'GET', '/v1/webhooks');
  assert.equal(list.status, 200, list.text);
  return list.body.webhooks.filter((w) => w.description === description);
}

test('a manager adds a webhook, sees its secret once, tests it, switches it off and deletes it', async () => {
  const page = await signedIn('manager');
  assert.equal(await page.isVisible('#nav a[data-view=webhooks]'), true);
  await page.click('#nav a[data-view=webhooks]');
  await page.waitForSelector('#webhook-form');
  await page.fill('#wh-url', `${hooks}/hooks/claims`);
  await page.selectOption('#wh-format', 'standard');
  await page.check('#wh-events input[value="callback.created"]');
  await page.check('#wh-events input[value="callback.sla_breached"]');
  await page.fill('#wh-max-score', '6');
  await page.fill('#wh-touchpoints', 'ui-hook-claim, ui-hook-renewal');
  await page.fill('#wh-auth', 'Bearer tk_receiver');
  await page.fill('#wh-description', 'ui claims team');
  await page.click('#webhook-form button[type=submit]');
  await page.waitForSelector('#secret');

  const [made] = await webhooksNamed('ui claims team');
  assert.ok(made, 'no webhook was created');
  assert.equal(page.url(), `${base}/ui/#/webhooks/${made.id}`);
  assert.equal(made.url, `${hooks}/hooks/claims`);
  assert.equal(made.format, 'standard');
  assert.deepEqual(made.events, ['callback.created', 'callback.sla_breached']);
  assert.deepEqual(made.filter, { max_score: 6, touchpoints: ['ui-hook-claim', 'ui-hook-renewal'] });
  assert.equal(made.auth_set, true);
  assert.equal(made.active, true);
  const secret = await page.inputValue('#secret');
  assert.match(secret, /^whsec_/);
  assert.match(await page.textContent('#secret-card'), /Shown only now/);
  assert.equal(await page.getAttribute('#secret', 'readonly'), '');

  // The test push: the receiver gets a webhook.test signed with the secret shown, and the
  // page follows the delivery until it is delivered.
  const before = received.length;
  await page.click('#test-webhook');
  await page.waitForFunction(() => /delivered/.test(document.querySelector('#notice').textContent));
  const got = received.slice(before).filter((r) => r.path === '/hooks/claims');
  assert.equal(got.length, 1);
  assert.equal(JSON.parse(got[0].body).type, 'webhook.test');
  assert.equal(got[0].headers.authorization, 'Bearer tk_receiver');
  assert.ok(signedWith(secret, got[0]), 'the secret shown does not sign what npsd sent');
  const [sent] = (await call(keys.manager, 'GET', `/v1/webhooks/${made.id}/deliveries`)).body.deliveries;
  assert.equal(sent.status, 'delivered');
  assert.equal(sent.event_type, 'webhook.test');
  assert.match(await page.textContent('#notice'), new RegExp(`Delivery #${sent.id} \\(webhook.test\\) delivered: the receiver answered HTTP 200`));
  const row = page.locator(`#delivery-${sent.id}`);
  assert.equal(await row.locator('td.status').textContent(), 'delivered');
  assert.match(await row.locator('.attempts').textContent(), /HTTP 200 in \d+ ms/);
  // Redrawn in place: the secret is still there to be copied.
  assert.equal(await page.inputValue('#secret'), secret);

  // Switched off: the API has it inactive, and the page offers no test (it would be a 409).
  await page.click('#toggle-webhook');
  await page.waitForFunction(() => document.querySelector('#webhook-state')?.textContent === 'switched off');
  assert.equal((await call(keys.manager, 'GET', `/v1/webhooks/${made.id}`)).body.active, false);
  assert.equal(await page.locator('#test-webhook').count(), 0);
  assert.equal(await page.textContent('#toggle-webhook'), 'Switch on');

  // The list shows it as it is; back on its page, the secret is gone for good.
  await page.click('#nav a[data-view=webhooks]');
  await page.waitForSelector('#webhooks');
  const listed = page.locator('#webhooks tr', { hasText: 'ui claims team' });
  const cells = await listed.locator('td').allTextContents();
  assert.deepEqual(cells, [`#${made.id}`, `${hooks}/hooks/claims`, 'standard', 'callback.created, callback.sla_breached',
    'score ≤ 6, touchpoints ui-hook-claim, ui-hook-renewal', 'ui claims team', 'switched off', '—']);
  await listed.locator('a').click();
  await page.waitForSelector('#webhook-state');
  assert.equal(await page.locator('#secret').count(), 0);

  // Deleted after a confirmation; dismissed first, nothing is deleted.
  const deletes = [];
  page.on('request', (request) => { if (request.method() === 'DELETE') deletes.push(request.url()); });
  page.once('dialog', (dialog) => dialog.dismiss());
  await page.click('#delete-webhook');
  await page.waitForFunction(() => !document.querySelector('#delete-webhook').disabled);
  assert.deepEqual(deletes, []);
  page.once('dialog', (dialog) => {
    assert.match(dialog.message(), new RegExp(`Delete webhook #${made.id}\\?`));
    dialog.accept();
  });
  await page.click('#delete-webhook');
  await page.waitForSelector('#webhook-form');
  assert.match(await page.textContent('#notice'), new RegExp(`Webhook #${made.id} deleted`));
  assert.equal((await call(keys.manager, 'GET', `/v1/webhooks/${made.id}`)).status, 404);
  assert.equal(await page.locator('#webhooks tr', { hasText: 'ui claims team' }).count(), 0);
  await done(page);
});

test('a failed delivery shows its attempts and is sent again on request', async () => {
  failing.add('/hooks/flaky');
  const made = await call(keys.manager, 'POST', '/v1/webhooks',
    { url: `${hooks}/hooks/flaky`, events: ['callback.created'], filter: { touchpoints: ['ui-hook-flaky'] }, description: 'ui flaky' });
  assert.equal(made.status, 201, made.text);
  const page = await signedIn('manager', `#/webhooks/${made.body.id}`);
  await page.waitForSelector('#test-webhook');
  assert.equal(await page.locator('#secret').count(), 0); // shown at creation only
  await page.click('#test-webhook');
  // One attempt and one retry (retry = 1s), both answered 500.
  await page.waitForFunction(() => /failed: HTTP 500/.test(document.querySelector('#notice').textContent), null, { timeout: 20000 });
  assert.match(await page.getAttribute('#notice', 'class'), /error/);
  const [delivery] = (await call(keys.manager, 'GET', `/v1/webhooks/${made.body.id}/deliveries`)).body.deliveries;
  assert.equal(delivery.status, 'failed');
  const row = page.locator(`#delivery-${delivery.id}`);
  assert.equal(await row.locator('td.status').textContent(), 'failed');
  assert.doesNotMatch(await page.textContent('#deliveries-card'), /null|undefined/);
  const attempts = await row.locator('.attempts li').allTextContents();
  assert.equal(attempts.length, delivery.attempt_log.length);
  assert.ok(attempts.length >= 2, attempts.join(' | '));
  for (const attempt of attempts) assert.match(attempt, /HTTP 500 in \d+ ms/);

  failing.delete('/hooks/flaky');
  const before = received.filter((r) => r.path === '/hooks/flaky').length;
  await page.click(`#retry-${delivery.id}`);
  await page.waitForFunction((id) => new RegExp(`Delivery #${id} \\(webhook.test\\) delivered`).test(document.querySelector('#notice').textContent),
    delivery.id);
  assert.equal(received.filter((r) => r.path === '/hooks/flaky').length, before + 1);
  const again = (await call(keys.manager, 'GET', `/v1/webhooks/${made.body.id}/deliveries`)).body.deliveries[0];
  assert.equal(again.id, delivery.id);
  assert.equal(again.status, 'delivered');
  assert.equal(await row.locator('td.status').textContent(), 'delivered');
  assert.equal(await row.locator('.attempts li').count(), again.attempt_log.length);
  assert.equal(await page.locator(`#retry-${delivery.id}`).count(), 0);
  await done(page);
  assert.equal((await call(keys.manager, 'DELETE', `/v1/webhooks/${made.body.id}`)).status, 204);
});

test('a digest webhook is added without events, in another format', async () => {
  const page = await signedIn('manager', '#/webhooks');
  await page.waitForSelector('#webhook-form');
  await page.fill('#wh-url', `${hooks}/hooks/daily`);
  await page.selectOption('#wh-format', 'ntfy');
  assert.equal(await page.isVisible('#wh-digest-at'), false);
  await page.selectOption('#wh-digest', 'daily');
  await page.fill('#wh-digest-at', '07:30');
  await page.fill('#wh-description', 'ui morning digest');
  await page.click('#webhook-form button[type=submit]');
  await page.waitForSelector('#secret');
  const [made] = await webhooksNamed('ui morning digest');
  assert.ok(made, 'no webhook was created');
  assert.equal(made.format, 'ntfy');
  assert.equal(made.digest, 'daily');
  assert.equal(made.digest_at, '07:30');
  assert.deepEqual(made.events, []);
  assert.deepEqual(made.filter, {});
  assert.equal(made.auth_set, false);
  assert.match(await page.textContent('#webhook'), /daily digest at 07:30/);
  await done(page);
  assert.equal((await call(keys.manager, 'DELETE', `/v1/webhooks/${made.id}`)).status, 204);
});

test('a webhook the API refuses names the field, which keeps what was typed', async () => {
  const count = (await call(keys.manager, 'GET', '/v1/webhooks')).body.webhooks.length;
  const page = await signedIn('manager', '#/webhooks');
  await page.waitForSelector('#webhook-form');
  // A URL the browser takes and npsd does not.
  await page.fill('#wh-url', 'ftp://example.com/alerts');
  await page.check('#wh-events input[value="survey.received"]');
  await page.click('#webhook-form button[type=submit]');
  await page.waitForSelector('#notice.error');
  const refused = await call(keys.manager, 'POST', '/v1/webhooks', { url: 'ftp://example.com/alerts', format: 'standard', events: ['survey.received'] });
  assert.equal(refused.status, 400);
  assert.equal(refused.body.error.field, 'url');
  assert.equal(await page.textContent('#notice'), `${refused.body.error.message} (url)`);
  assert.equal(await page.getAttribute('#wh-url', 'aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'wh-url');
  assert.equal(await page.inputValue('#wh-url'), 'ftp://example.com/alerts');
  assert.equal(await page.isChecked('#wh-events input[value="survey.received"]'), true);

  // A nested field: the filter's lowest score above its highest.
  await page.fill('#wh-url', `${hooks}/hooks/never`);
  await page.fill('#wh-min-score', '9');
  await page.fill('#wh-max-score', '3');
  await page.click('#webhook-form button[type=submit]');
  await page.waitForFunction(() => /\(filter\.min_score\)$/.test(document.querySelector('#notice').textContent));
  assert.equal(await page.getAttribute('#wh-min-score', 'aria-invalid'), 'true');
  assert.equal(await page.getAttribute('#wh-url', 'aria-invalid'), null);
  assert.equal((await call(keys.manager, 'GET', '/v1/webhooks')).body.webhooks.length, count);
  await done(page);
});

test('a webhook being added keeps what was typed across pages and a reload, until added or discarded', async () => {
  const url = `${hooks}/hooks/draft-new`;
  const page = await signedIn('manager', '#/webhooks');
  await page.waitForSelector('#webhook-form');
  const type = async () => {
    await page.fill('#wh-url', url);
    await page.selectOption('#wh-format', 'ntfy');
    await page.check('#wh-events input[value="callback.created"]');
    await page.selectOption('#wh-digest', 'hourly');
    await page.fill('#wh-digest-minute', '5');
    await page.fill('#wh-max-score', '6');
    await page.fill('#wh-touchpoints', 'ui-draft');
    await page.fill('#wh-auth', 'Bearer tk_draft');
    await page.fill('#wh-description', 'ui draft new');
  };
  const typed = async () => {
    await page.waitForSelector('#webhook-form');
    assert.equal(await page.inputValue('#wh-url'), url);
    assert.equal(await page.inputValue('#wh-format'), 'ntfy');
    assert.equal(await page.isChecked('#wh-events input[value="callback.created"]'), true);
    assert.equal(await page.isChecked('#wh-events input[value="survey.received"]'), false);
    assert.equal(await page.inputValue('#wh-digest'), 'hourly');
    assert.equal(await page.isVisible('#wh-digest-minute'), true);
    assert.equal(await page.inputValue('#wh-digest-minute'), '5');
    assert.equal(await page.inputValue('#wh-max-score'), '6');
    assert.equal(await page.inputValue('#wh-touchpoints'), 'ui-draft');
    assert.equal(await page.inputValue('#wh-description'), 'ui draft new');
    // A credential is not written down: it is asked for again.
    assert.equal(await page.inputValue('#wh-auth'), '');
    assert.match(await page.textContent('#webhook-draft'), /Authorization header: type it again/);
  };
  await type();
  assert.ok(!JSON.stringify(await page.evaluate(() => ({ ...sessionStorage }))).includes('tk_draft'));
  await page.click('#nav a[data-view=answers]');
  await page.waitForSelector('#answers-filter');
  await page.click('#nav a[data-view=webhooks]');
  await typed();
  await page.reload();
  await typed();

  // Discard: an empty form, and nothing kept.
  await page.click('#discard-webhook');
  await page.waitForFunction(() => document.querySelector('#wh-url').value === '');
  assert.equal(await page.locator('#webhook-draft').count(), 0);
  assert.equal(await page.inputValue('#wh-description'), '');
  await page.click('#nav a[data-view=answers]');
  await page.waitForSelector('#answers-filter');
  await page.click('#nav a[data-view=webhooks]');
  await page.waitForSelector('#webhook-form');
  assert.equal(await page.inputValue('#wh-url'), '');

  // Added: forgotten too.
  await type();
  await page.click('#webhook-form button[type=submit]');
  await page.waitForSelector('#secret-card');
  const [made] = await webhooksNamed('ui draft new');
  assert.equal(made.digest_at, '00:05');
  assert.equal(made.auth_set, true);
  await page.click('#nav a[data-view=webhooks]');
  await page.waitForSelector('#webhook-form');
  assert.equal(await page.inputValue('#wh-url'), '');
  assert.equal(await page.locator('#webhook-draft').count(), 0);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('npsd.webhook-draft.new')), null);
  assert.equal((await call(keys.manager, 'DELETE', `/v1/webhooks/${made.id}`)).status, 204);
  await done(page);
});

test('a webhook being edited keeps what was typed across pages, until saved, cancelled or signed out', async () => {
  const made = await call(keys.manager, 'POST', '/v1/webhooks', {
    url: `${hooks}/hooks/draft-edit`, format: 'slack', events: ['callback.created'], filter: { max_score: 6 }, description: 'ui draft edit',
  });
  assert.equal(made.status, 201, made.text);
  const id = made.body.id;
  const page = await signedIn('manager', `#/webhooks/${id}`);
  const patches = [];
  page.on('request', (request) => { if (request.method() === 'PATCH') patches.push(request.postDataJSON()); });
  const edit = async (description) => {
    await page.click('#edit-webhook');
    await page.waitForSelector('#webhook-edit');
    await page.fill('#wh-description', description);
    await page.fill('#wh-max-score', '4');
  };
  const away = async () => {
    await page.click('#nav a[data-view=webhooks]');
    await page.waitForSelector('#webhook-form');
    await page.goto(`${base}/ui/#/webhooks/${id}`);
    await page.waitForSelector('#webhook');
  };

  // Gone to the list and back: the form is open again, holding what was typed.
  await edit('ui draft edited');
  await away();
  await page.waitForSelector('#webhook-edit');
  assert.equal(await page.inputValue('#wh-description'), 'ui draft edited');
  assert.equal(await page.inputValue('#wh-max-score'), '4');
  assert.equal(await page.inputValue('#wh-url'), `${hooks}/hooks/draft-edit`);
  assert.equal(await page.getAttribute('#edit-webhook', 'aria-expanded'), 'true');
  // The add form on the list is another draft: it stayed empty.
  assert.equal(await page.evaluate(() => sessionStorage.getItem('npsd.webhook-draft.new')), null);

  // Saved: what differs is sent, and the draft goes.
  await page.click('#webhook-edit button[type=submit]');
  await page.waitForFunction(() => /changed/.test(document.querySelector('#notice').textContent));
  assert.deepEqual(patches, [{ filter: { max_score: 4 }, description: 'ui draft edited' }]);
  await away();
  assert.equal(await page.locator('#webhook-edit').count(), 0);

  // Cancelled: forgotten.
  await edit('ui draft cancelled');
  await page.click('#cancel-edit');
  await away();
  assert.equal(await page.locator('#webhook-edit').count(), 0);

  // Signed out: forgotten with the key.
  await edit('ui draft signed out');
  await page.click('#sign-out');
  await page.waitForSelector('#sign-in');
  await signIn(page, keys.manager, `#/webhooks/${id}`);
  await page.waitForSelector('#webhook');
  assert.equal(await page.locator('#webhook-edit').count(), 0);
  assert.equal(await page.evaluate(() => sessionStorage.length), 1); // the key alone
  assert.equal(patches.length, 1);
  assert.equal((await call(keys.manager, 'GET', `/v1/webhooks/${id}`)).body.description, 'ui draft edited');

  // Deleted: nothing left to save it to, so it goes with the webhook.
  await edit('ui draft deleted');
  page.once('dialog', (dialog) => dialog.accept());
  await page.click('#delete-webhook');
  await page.waitForSelector('#webhook-form');
  assert.equal(await page.evaluate((key) => sessionStorage.getItem(key), `npsd.webhook-draft.${id}`), null);
  assert.equal((await call(keys.manager, 'GET', `/v1/webhooks/${id}`)).status, 404);
  await done(page);
});

test('an edit draft of a webhook changed elsewhere since is not put back silently: the form shows it as it is now and offers the draft', async () => {
  const made = await call(keys.manager, 'POST', '/v1/webhooks', {
    url: `${hooks}/hooks/draft-stale`, format: 'slack', events: ['callback.created'], filter: { max_score: 6 }, description: 'ui stale before',
  });
  assert.equal(made.status, 201, made.text);
  const id = made.body.id;
  const moved = `${hooks}/hooks/draft-stale-moved`;
  const page = await signedIn('manager', `#/webhooks/${id}`);
  const patches = [];
  page.on('request', (request) => { if (request.method() === 'PATCH') patches.push(request.postDataJSON()); });
  // A draft begun here, then the webhook changed elsewhere (another tab, the API) while this
  // tab is on another page, then its page opened again.
  const draftThenChanged = async (type, elsewhere) => {
    await page.click('#edit-webhook');
    await page.waitForSelector('#webhook-edit');
    await type();
    await page.click('#nav a[data-view=webhooks]');
    await page.waitForSelector('#webhook-form');
    const r = await call(keys.manager, 'PATCH', `/v1/webhooks/${id}`, elsewhere);
    assert.equal(r.status, 200, r.text);
    await page.goto(`${base}/ui/#/webhooks/${id}`);
    await page.waitForSelector('#webhook-edit');
  };

  await draftThenChanged(async () => {
    await page.fill('#wh-description', 'ui stale typed');
    await page.fill('#wh-max-score', '4');
  }, { url: moved, description: 'ui stale changed elsewhere' });
  // The form holds the webhook as it is now, not the draft, and says what changed.
  assert.equal(await page.inputValue('#wh-url'), moved);
  assert.equal(await page.inputValue('#wh-description'), 'ui stale changed elsewhere');
  assert.equal(await page.inputValue('#wh-max-score'), '6');
  assert.match(await page.textContent('#webhook-draft-stale'), /changed elsewhere \(url, description\)/);
  assert.equal(await page.locator('#webhook-draft').count(), 0);
  // Until the manager chooses, the draft stays: a reload offers it again.
  await page.reload();
  await page.waitForSelector('#webhook-draft-stale');
  assert.equal(await page.inputValue('#wh-description'), 'ui stale changed elsewhere');

  // Put back: what the draft changed goes over the new values, the rest stays as it is now;
  // saved, only that is sent.
  await page.click('#restore-webhook-draft');
  assert.match(await page.textContent('#webhook-draft'), /back, over the changes made elsewhere/);
  assert.equal(await page.inputValue('#wh-description'), 'ui stale typed');
  assert.equal(await page.inputValue('#wh-max-score'), '4');
  assert.equal(await page.inputValue('#wh-url'), moved);
  await page.click('#webhook-edit button[type=submit]');
  await page.waitForFunction(() => /changed/.test(document.querySelector('#notice').textContent));
  assert.deepEqual(patches, [{ filter: { max_score: 4 }, description: 'ui stale typed' }]);
  let now = (await call(keys.manager, 'GET', `/v1/webhooks/${id}`)).body;
  assert.equal(now.url, moved);
  assert.equal(now.description, 'ui stale typed');

  // Discarded: the form stays as the webhook is now, and the draft goes for good.
  await draftThenChanged(async () => {
    await page.fill('#wh-description', 'ui stale typed again');
  }, { events: ['callback.created', 'survey.received'] });
  assert.match(await page.textContent('#webhook-draft-stale'), /changed elsewhere \(events\)/);
  assert.equal(await page.inputValue('#wh-description'), 'ui stale typed');
  assert.equal(await page.isChecked('#wh-events input[value="survey.received"]'), true);
  await page.click('#discard-webhook-draft');
  assert.match(await page.textContent('#webhook-draft'), /discarded/);
  assert.equal(await page.evaluate((key) => sessionStorage.getItem(key), `npsd.webhook-draft.${id}`), null);
  await page.click('#webhook-edit button[type=submit]');
  await page.waitForFunction(() => /Nothing changed/.test(document.querySelector('#notice').textContent));
  assert.equal(patches.length, 1);
  await page.reload();
  await page.waitForSelector('#webhook');
  assert.equal(await page.locator('#webhook-edit').count(), 0);
  now = (await call(keys.manager, 'GET', `/v1/webhooks/${id}`)).body;
  assert.deepEqual(now.events, ['callback.created', 'survey.received']);
  assert.equal(now.description, 'ui stale typed');
  await done(page);
});

test('an agent is not offered the webhooks, and is told so at their address', async () => {
  const page = await signedIn('agent');
  await page.waitForSelector('#claim');
  assert.equal(await page.isHidden('#nav a[data-view=webhooks]'), true);
  await page.goto(`${base}/ui/#/webhooks`);
  await page.waitForFunction(() => /Webhooks are for managers/.test(document.querySelector('#main').textContent));
  assert.equal(await page.locator('#webhook-form').count(), 0);
  assert.equal((await call(keys.agent, 'GET', '/v1/webhooks')).status, 403);
  await done(page);
});

test('an overlong value is sent whole and refused by the API, never cut by the form', async () => {
  const count = (await call(keys.manager, 'GET', '/v1/webhooks')).body.webhooks.length;
  const page = await signedIn('manager', '#/webhooks');
  await page.waitForSelector('#webhook-form');
  // One character over the API's 2048: cut to 2048 it would be a webhook to a wrong URL.
  const long = `${hooks}/hooks/`;
  const url = long + 'a'.repeat(2049 - long.length);
  await page.fill('#wh-url', url);
  await page.check('#wh-events input[value="survey.received"]');
  await page.fill('#wh-description', 'ui too long');
  await page.click('#webhook-form button[type=submit]');
  await page.waitForSelector('#notice.error');
  assert.match(await page.textContent('#notice'), /\(url\)$/);
  assert.equal(await page.getAttribute('#wh-url', 'aria-invalid'), 'true');
  assert.equal(await page.inputValue('#wh-url'), url);
  assert.equal((await call(keys.manager, 'GET', '/v1/webhooks')).body.webhooks.length, count);

  // 150 emoji are 150 characters to the API (at most 200), though 300 UTF-16 units.
  const emoji = '🔔'.repeat(150);
  await page.fill('#wh-url', `${hooks}/hooks/emoji`);
  await page.fill('#wh-description', emoji);
  await page.click('#webhook-form button[type=submit]');
  await page.waitForSelector('#secret');
  const [made] = await webhooksNamed(emoji);
  assert.ok(made, 'the description was not kept whole');
  await done(page);
  assert.equal((await call(keys.manager, 'DELETE', `/v1/webhooks/${made.id}`)).status, 204);
});

test('an overlong improvement is refused by the API, naming it, and kept as typed', async () => {
  const survey = await answer('ui-long-idea', 2);
  const page = await signedIn('agent');
  await page.fill('#claim-touchpoint', 'ui-long-idea');
  await page.click('#claim button[type=submit]');
  await page.waitForSelector('#complete');
  await page.selectOption('#outcome', 'reached');
  await page.click('#add-improvement');
  await page.click('#add-improvement');
  const rows = page.locator('#improvements .improvement');
  const text = 'x'.repeat(2001); // the API takes 2000
  await rows.nth(1).locator('[name=text]').fill(text);
  await page.click('#complete button[type=submit]');
  await page.waitForSelector('#notice.error');
  // The empty first row is not sent: the refused one is the first sent, the second shown.
  assert.match(await page.textContent('#notice'), /\(improvements\.0\.text\)$/);
  assert.equal(await rows.nth(1).locator('[name=text]').getAttribute('aria-invalid'), 'true');
  assert.equal(await rows.nth(1).locator('[name=text]').inputValue(), text);
  assert.equal((await stored(survey.callback.id)).status, 'claimed');
  await done(page);
  assert.equal((await call(keys.agent, 'POST', `/v1/callbacks/${survey.callback.id}/release`)).status, 200);
  assert.equal((await call(keys.manager, 'POST', `/v1/callbacks/${survey.callback.id}/cancel`)).status, 200);
});

test('on a 360 px phone a manager\'s pages do not scroll sideways', async () => {
  const page = await signedIn('manager', '', { viewport: { width: 360, height: 740 } });
  for (const [hash, ready] of [['#/calls', '#stats'], ['#/reports', '#by-touchpoint'], ['#/webhooks', '#webhook-form']]) {
    await page.goto(`${base}/ui/${hash}`);
    await page.waitForSelector(ready);
    const [wide, room] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    assert.ok(wide <= room, `${hash} is ${wide} px wide at ${room}`);
    assert.ok(await page.locator('#sign-out').isVisible());
    const right = await page.locator('#sign-out').evaluate((b) => b.getBoundingClientRect().right);
    assert.ok(right <= room, `Sign out ends at ${right} px on ${hash}`);
  }
  await done(page);
});

test('a very long URL or text keeps its table column readable and its row short', async () => {
  // One word of 2000 characters (the API's most for an idea), and a URL of 2048.
  const survey = await answer('ui-long-word', 3);
  assert.equal((await call(keys.agent, 'POST', '/v1/callbacks/claim', { touchpoint: 'ui-long-word' })).body.id, survey.callback.id);
  const word = 'w'.repeat(2000);
  const completed = await call(keys.agent, 'POST', `/v1/callbacks/${survey.callback.id}/complete`,
    { outcome: 'reached', improvements: [{ area: 'product', text: word }] });
  assert.equal(completed.status, 200, completed.text);
  const path = `${hooks}/hooks/`;
  const url = path + 'u'.repeat(2048 - path.length);
  const made = await call(keys.manager, 'POST', '/v1/webhooks', { url, events: ['loop.silent'], description: 'ui long url' });
  assert.equal(made.status, 201, made.text);

  // Its row's height and its cell's width, and whether the whole text is there to scroll to.
  const measure = (cell) => cell.evaluate((td) => {
    const row = td.closest('tr').getBoundingClientRect();
    const box = td.querySelector('.clamp') || td;
    return { height: row.height, width: td.getBoundingClientRect().width, text: td.textContent, scrolls: box.scrollHeight > box.clientHeight };
  });
  // On a wide screen and on a tablet (narrower, the table squeezes its columns harder).
  const page = await signedIn('manager', '', { viewport: { width: 1280, height: 800 } });
  for (const width of [1280, 768]) {
    await page.setViewportSize({ width, height: 800 });
    await page.goto(`${base}/ui/#/reports?touchpoint=ui-long-word`);
    await page.waitForSelector('#improvement-list');
    const idea = await measure(page.locator('#improvement-list tbody tr td:nth-child(4)').first());
    assert.equal(idea.text, word);
    assert.ok(idea.width >= 150, `at ${width} px the idea's column is ${idea.width} px wide`);
    assert.ok(idea.height <= 250, `at ${width} px the idea's row is ${idea.height} px tall`);
    assert.ok(idea.scrolls, 'the rest of the idea cannot be scrolled to');

    await page.goto(`${base}/ui/#/webhooks`);
    await page.waitForSelector('#webhooks');
    const cell = await measure(page.locator('#webhooks tr', { hasText: 'ui long url' }).locator('td.url'));
    assert.equal(cell.text, url);
    assert.ok(cell.width >= 150, `at ${width} px the URL's column is ${cell.width} px wide`);
    assert.ok(cell.height <= 250, `at ${width} px the URL's row is ${cell.height} px tall`);
    assert.ok(cell.scrolls, 'the rest of the URL cannot be scrolled to');
  }
  await done(page);
  assert.equal((await call(keys.manager, 'DELETE', `/v1/webhooks/${made.body.id}`)).status, 204);
});

test('a webhook deleted meanwhile: its page goes back to the list and says so', async () => {
  const page = await signedIn('manager', '#/webhooks');
  await page.waitForSelector('#webhook-form');
  for (const button of ['test-webhook', 'toggle-webhook', 'delete-webhook', 'refresh-deliveries']) {
    const made = await call(keys.manager, 'POST', '/v1/webhooks', { url: `${hooks}/hooks/gone`, events: ['loop.silent'], description: 'ui gone' });
    assert.equal(made.status, 201, made.text);
    await page.goto(`${base}/ui/#/webhooks/${made.body.id}`);
    await page.waitForSelector(`#${button}`);
    // Deleted through the API (or in another tab) while its page is open.
    assert.equal((await call(keys.manager, 'DELETE', `/v1/webhooks/${made.body.id}`)).status, 204);
    if (button === 'delete-webhook') page.once('dialog', (dialog) => dialog.accept());
    await page.click(`#${button}`);
    await page.waitForURL(/#\/webhooks$/);
    await page.waitForSelector('#webhook-form');
    assert.equal(await page.textContent('#notice'), `Webhook #${made.body.id} no longer exists: it was deleted meanwhile.`, button);
    assert.equal(await page.locator('#webhooks tr', { hasText: 'ui gone' }).count(), 0);
  }
  await done(page);
});

test('an address whose id cannot be one says Not found, as one unknown does', async () => {
  const page = await signedIn('manager', '#/reports');
  await page.waitForSelector('#by-touchpoint');
  for (const [hash, what, list] of [['#/webhooks/abc', 'webhook', '#/webhooks'], ['#/webhooks/0', 'webhook', '#/webhooks'],
    ['#/webhooks/99999999999999999999', 'webhook', '#/webhooks'], ['#/webhooks/99999999', 'webhook', '#/webhooks'],
    ['#/callbacks/abc', 'callback', '#/calls'], ['#/foo', 'page', '#/calls'], ['#/call', 'page', '#/calls']]) {
    await page.goto(`${base}/ui/${hash}`);
    await page.waitForFunction(() => document.querySelector('#main h1')?.textContent === 'Not found');
    assert.equal(await page.textContent('#main p'), `There is no such ${what}.`, hash);
    assert.equal(await page.getAttribute('#main p a', 'href'), list, hash);
    assert.equal(await page.locator('#stats, #callbacks, #webhook-form').count(), 0, hash);
    await page.goto(`${base}/ui/#/reports`); // so that the next Not found is drawn anew
    await page.waitForSelector('#by-touchpoint');
  }
  await done(page);
});

test('an hourly digest is asked for its minute only', async () => {
  const page = await signedIn('manager', '#/webhooks');
  await page.waitForSelector('#webhook-form');
  await page.fill('#wh-url', `${hooks}/hooks/hourly`);
  // A time typed for a daily digest first is not what an hourly one sends.
  await page.selectOption('#wh-digest', 'daily');
  await page.fill('#wh-digest-at', '09:15');
  await page.selectOption('#wh-digest', 'hourly');
  assert.equal(await page.isVisible('#wh-digest-at'), false);
  assert.equal(await page.isVisible('#wh-digest-minute'), true);
  await page.fill('#wh-digest-minute', '5');
  await page.fill('#wh-description', 'ui hourly digest');
  await page.click('#webhook-form button[type=submit]');
  await page.waitForSelector('#secret');
  const [made] = await webhooksNamed('ui hourly digest');
  assert.ok(made, 'no webhook was created');
  assert.equal(made.digest, 'hourly');
  assert.equal(made.digest_at, '00:05');
  assert.match(await page.textContent('#webhook'), /hourly digest at :05/);
  await done(page);
  assert.equal((await call(keys.manager, 'DELETE', `/v1/webhooks/${made.id}`)).status, 204);
});

test('a manager edits a webhook: only what changed is sent, a refusal names the field, the secret stays unseen', async () => {
  const made = await call(keys.manager, 'POST', '/v1/webhooks', {
    url: `${hooks}/hooks/edit`, format: 'slack', events: ['callback.created', 'survey.received'],
    filter: { max_score: 6, touchpoints: ['ui-edit-a', 'ui-edit-b'] }, auth: 'Bearer tk_edit', description: 'ui edit me',
  });
  assert.equal(made.status, 201, made.text);
  const id = made.body.id;
  const page = await signedIn('manager', `#/webhooks/${id}`);
  const patches = [];
  page.on('request', (request) => { if (request.method() === 'PATCH') patches.push(request.postDataJSON()); });
  await page.click('#edit-webhook');
  await page.waitForSelector('#webhook-edit');
  // The form holds what the webhook has now, but its auth, which is never shown.
  assert.equal(await page.evaluate(() => document.activeElement.id), 'wh-url');
  assert.equal(await page.inputValue('#wh-url'), `${hooks}/hooks/edit`);
  assert.equal(await page.inputValue('#wh-format'), 'slack');
  assert.equal(await page.isChecked('#wh-events input[value="survey.received"]'), true);
  assert.equal(await page.isChecked('#wh-events input[value="callback.created"]'), true);
  assert.equal(await page.isChecked('#wh-events input[value="loop.silent"]'), false);
  assert.equal(await page.inputValue('#wh-min-score'), '');
  assert.equal(await page.inputValue('#wh-max-score'), '6');
  assert.equal(await page.inputValue('#wh-touchpoints'), 'ui-edit-a, ui-edit-b');
  assert.equal(await page.inputValue('#wh-auth'), '');
  assert.equal(await page.inputValue('#wh-description'), 'ui edit me');

  // Saved unchanged: nothing is sent.
  await page.click('#webhook-edit button[type=submit]');
  await page.waitForFunction(() => /Nothing changed/.test(document.querySelector('#notice').textContent));
  assert.deepEqual(patches, []);

  // Refused (the lowest score above the highest): the field is named and marked, and the
  // form keeps what was typed. The filter goes whole: a PATCH replaces it.
  await page.fill('#wh-min-score', '9');
  await page.click('#webhook-edit button[type=submit]');
  await page.waitForFunction(() => /\(filter\.min_score\)$/.test(document.querySelector('#notice').textContent));
  assert.equal(await page.getAttribute('#wh-min-score', 'aria-invalid'), 'true');
  assert.equal(await page.inputValue('#wh-min-score'), '9');
  assert.deepEqual(patches, [{ filter: { min_score: 9, max_score: 6, touchpoints: ['ui-edit-a', 'ui-edit-b'] } }]);
  assert.equal((await call(keys.manager, 'GET', `/v1/webhooks/${id}`)).body.filter.min_score, undefined);

  // The URL, an event less, the scores cleared (the touchpoints kept), the description.
  await page.fill('#wh-min-score', '');
  await page.fill('#wh-max-score', '');
  await page.fill('#wh-url', `${hooks}/hooks/edited`);
  await page.uncheck('#wh-events input[value="survey.received"]');
  await page.fill('#wh-description', 'ui edited');
  await page.click('#webhook-edit button[type=submit]');
  await page.waitForSelector('#webhook-edit', { state: 'detached' });
  assert.match(await page.textContent('#notice'), new RegExp(`Webhook #${id} changed`));
  assert.deepEqual(patches[1], {
    url: `${hooks}/hooks/edited`, events: ['callback.created'], filter: { touchpoints: ['ui-edit-a', 'ui-edit-b'] }, description: 'ui edited',
  });
  let now = (await call(keys.manager, 'GET', `/v1/webhooks/${id}`)).body;
  assert.equal(now.url, `${hooks}/hooks/edited`);
  assert.equal(now.format, 'slack');
  assert.deepEqual(now.events, ['callback.created']);
  assert.deepEqual(now.filter, { touchpoints: ['ui-edit-a', 'ui-edit-b'] });
  assert.equal(now.auth_set, true);
  assert.equal(now.description, 'ui edited');
  assert.match(await page.textContent('#webhook'), /hooks\/edited/);

  // A daily digest instead of events, and no Authorization header any more.
  await page.click('#edit-webhook');
  await page.waitForSelector('#webhook-edit');
  await page.uncheck('#wh-events input[value="callback.created"]');
  await page.selectOption('#wh-digest', 'daily');
  await page.fill('#wh-digest-at', '07:45');
  await page.check('#wh-auth-remove');
  await page.click('#webhook-edit button[type=submit]');
  await page.waitForSelector('#webhook-edit', { state: 'detached' });
  assert.deepEqual(patches[2], { events: [], digest: 'daily', digest_at: '07:45', auth: null });
  now = (await call(keys.manager, 'GET', `/v1/webhooks/${id}`)).body;
  assert.deepEqual([now.events, now.digest, now.digest_at, now.auth_set], [[], 'daily', '07:45', false]);
  assert.match(await page.textContent('#webhook'), /daily digest at 07:45/);

  // Back to an hourly one at :05: the minute goes with the new kind.
  await page.click('#edit-webhook');
  await page.waitForSelector('#webhook-edit');
  assert.equal(await page.inputValue('#wh-digest-at'), '07:45');
  await page.selectOption('#wh-digest', 'hourly');
  await page.fill('#wh-digest-minute', '5');
  await page.click('#webhook-edit button[type=submit]');
  await page.waitForSelector('#webhook-edit', { state: 'detached' });
  assert.deepEqual(patches[3], { digest: 'hourly', digest_at: '00:05' });
  assert.equal(patches.length, 4);
  // The secret is shown at creation only: never here.
  assert.equal(await page.locator('#secret').count(), 0);
  assert.doesNotMatch(await page.textContent('#main'), /whsec_/);
  await done(page);
  assert.equal((await call(keys.manager, 'DELETE', `/v1/webhooks/${id}`)).status, 204);
});

test('an attempt shows what the receiver answered, as text in a bounded box', async () => {
  const hostile = `<img src=x onerror="window.pwned=1"><b>Quota exceeded</b>\n${'x'.repeat(600)}\n${'line\n'.repeat(1000)}`;
  replies.set('/hooks/answer', { status: 500, body: hostile });
  const made = await call(keys.manager, 'POST', '/v1/webhooks', { url: `${hooks}/hooks/answer`, events: ['loop.silent'], description: 'ui answer' });
  assert.equal(made.status, 201, made.text);
  const page = await signedIn('manager', `#/webhooks/${made.body.id}`, { viewport: { width: 360, height: 740 } });
  await page.click('#test-webhook');
  await page.waitForFunction(() => /failed: HTTP 500/.test(document.querySelector('#notice').textContent), null, { timeout: 20000 });
  const [delivery] = (await call(keys.manager, 'GET', `/v1/webhooks/${made.body.id}/deliveries`)).body.deliveries;
  const heads = page.locator(`#delivery-${delivery.id} .response-head`);
  assert.equal(await heads.count(), delivery.attempt_log.length);
  assert.equal(delivery.attempt_log[0].response_head.length, 4096);
  assert.equal(await heads.first().textContent(), delivery.attempt_log[0].response_head);
  // Text only: nothing made of it, nothing run.
  assert.equal(await page.locator('#main img, #main b').count(), 0);
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  const box = await heads.first().evaluate((el) => ({ height: el.getBoundingClientRect().height, scrolls: el.scrollHeight > el.clientHeight }));
  assert.ok(box.height <= 150, `the answer's box is ${box.height} px tall`);
  assert.ok(box.scrolls, 'the rest of the answer cannot be scrolled to');
  const [wide, room] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert.ok(wide <= room, `the page is ${wide} px wide at ${room}`);
  await done(page);
  replies.delete('/hooks/answer');
  assert.equal((await call(keys.manager, 'DELETE', `/v1/webhooks/${made.body.id}`)).status, 204);
});

test('a webhook\'s deliveries go on past the newest 20, page by page', async () => {
  const made = await call(keys.manager, 'POST', '/v1/webhooks', { url: `${hooks}/hooks/many`, events: ['loop.silent'], description: 'ui many' });
  assert.equal(made.status, 201, made.text);
  const id = made.body.id;
  const sent = [];
  for (let i = 0; i < 23; i++) {
    const test = await call(keys.manager, 'POST', `/v1/webhooks/${id}/test`);
    assert.equal(test.status, 202, test.text);
    sent.push(`#${test.body.id}`);
  }
  const page = await signedIn('manager', `#/webhooks/${id}`);
  await page.waitForSelector('#deliveries tbody tr');
  const shown = () => page.locator('#deliveries tbody tr td:first-child').allTextContents();
  assert.deepEqual(await shown(), sent.slice(3).reverse());
  await page.click('#older-deliveries');
  await page.waitForFunction(() => /page 2/.test(document.querySelector('#deliveries-card h2').textContent));
  // As the API pages them: from the first page's next_cursor.
  const first = (await call(keys.manager, 'GET', `/v1/webhooks/${id}/deliveries?limit=20`)).body;
  const second = (await call(keys.manager, 'GET', `/v1/webhooks/${id}/deliveries?limit=20&cursor=${first.next_cursor}`)).body;
  assert.deepEqual(await shown(), second.deliveries.map((d) => `#${d.id}`));
  assert.deepEqual(await shown(), sent.slice(0, 3).reverse());
  assert.equal(await page.locator('#older-deliveries').count(), 0);
  await page.click('#newer-deliveries');
  await page.waitForFunction(() => document.querySelector('#deliveries-card h2').textContent === 'Recent deliveries');
  assert.deepEqual(await shown(), sent.slice(3).reverse());
  await done(page);
  assert.equal((await call(keys.manager, 'DELETE', `/v1/webhooks/${id}`)).status, 204);
});

test('a manager leaves an answer out of the NPS with a reason, and counts it again', async () => {
  const customer = { id: 'C-ui-exclude', name: 'Test Tessa', phone: '+31612340555' };
  const earlier = await answer('ui-exclude', 10, { customer, comment: 'Great' });
  const survey = await answer('ui-exclude', 2, { customer, comment: 'This is a test answer' });
  const page = await signedIn('manager', `#/callbacks/${survey.callback.id}`);
  await page.waitForSelector('#surveys');
  const patches = [];
  page.on('request', (request) => { if (request.method() === 'PATCH') patches.push([request.url(), request.postDataJSON()]); });
  const item = page.locator('#surveys li.survey');
  await item.locator('button.exclude').click();
  const reason = item.locator('.exclude-form [name=reason]');
  assert.equal(await page.evaluate(() => document.activeElement.name), 'reason');
  // Without a reason nothing is sent: the browser asks for one, and spaces are none.
  await item.locator('.exclude-form button[type=submit]').click();
  assert.equal(await reason.evaluate((input) => input.validity.valueMissing), true);
  await reason.fill('   ');
  await item.locator('.exclude-form button[type=submit]').click();
  await page.waitForFunction(() => /Say why/.test(document.querySelector('#notice').textContent));
  assert.equal(await reason.getAttribute('aria-invalid'), 'true');
  assert.deepEqual(patches, []);

  await reason.fill('test answer');
  await reason.press('Enter');
  await page.waitForSelector('#surveys .excluded');
  assert.match(await page.textContent('#notice'), new RegExp(`Answer #${survey.id} is left out of every NPS figure`));
  assert.equal(await page.textContent('#surveys .excluded'), 'Left out of the NPS: test answer');
  assert.deepEqual(patches, [[`${base}/v1/surveys/${survey.id}`, { excluded: true, reason: 'test answer' }]]);
  let now = (await call(keys.manager, 'GET', `/v1/surveys/${survey.id}`)).body;
  assert.deepEqual([now.excluded, now.exclude_reason], [true, 'test answer']);
  const nps = (await call(keys.manager, 'GET', '/v1/nps?touchpoint=ui-exclude')).body;
  assert.deepEqual([nps.responses, nps.excluded], [1, 1]);

  // The customer's earlier answer, among their history, the same way.
  const history = page.locator('#history li.answer');
  await history.locator('button.exclude').click();
  await history.locator('.exclude-form [name=reason]').fill('a duplicate <b>of</b> another');
  await history.locator('.exclude-form button[type=submit]').click();
  await page.waitForSelector('#history .excluded');
  assert.equal(await page.textContent('#history .excluded'), 'Left out of the NPS: a duplicate <b>of</b> another');
  assert.equal((await call(keys.manager, 'GET', `/v1/surveys/${earlier.id}`)).body.excluded, true);

  // Counted again: the mark and the reason go.
  await page.locator('#surveys button.include').click();
  await page.waitForFunction(() => /counts in the NPS again/.test(document.querySelector('#notice').textContent));
  await page.waitForSelector('#surveys button.exclude');
  assert.equal(await page.locator('#surveys .excluded').count(), 0);
  now = (await call(keys.manager, 'GET', `/v1/surveys/${survey.id}`)).body;
  assert.deepEqual([now.excluded, now.exclude_reason], [false, null]);
  assert.deepEqual(patches[2], [`${base}/v1/surveys/${survey.id}`, { excluded: false }]);
  await done(page);

  // An agent sees which answer does not count, and is offered no means to change it.
  const agent = await signedIn('agent', `#/callbacks/${survey.callback.id}`);
  await agent.waitForSelector('#history .excluded');
  assert.equal(await agent.locator('#main button.exclude, #main button.include').count(), 0);
  await done(agent);
  assert.equal((await call(keys.manager, 'POST', `/v1/callbacks/${survey.callback.id}/cancel`)).status, 200);
});

// ---------- answers ----------

// The answers the Answers page lists, by their element ids, once they are as expected.
async function answersShown(page, surveys) {
  const want = surveys.map((s) => `answer-${s.id}`);
  await page.waitForFunction((ids) => JSON.stringify([...document.querySelectorAll('#answers > li')].map((li) => li.id)) === JSON.stringify(ids), want);
}

test('a manager reads every answer on the Answers page, filtered and page by page as the API lists them', async () => {
  // Twenty-three answers a minute apart, two days ago; only the last opens a callback. At
  // 17 s past a minute: at :00 Chromium shortens a datetime-local value to the minute, which
  // fill() then refuses as malformed (one run in sixty failed so).
  const start = Math.floor((Date.now() - 2 * 86400 * 1000) / 60000) * 60000 + 17000;
  const at = (i) => new Date(start + i * 60000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const made = [];
  for (let i = 0; i < 22; i++) {
    made.push(await answer('ui-answers', i % 11, {
      customer: { id: `C-answers-${i}` }, channel: i % 2 ? 'app' : 'web', answered_at: at(i), contact_consent: false,
    }));
  }
  made.push(await answer('ui-answers', 3, { customer: { id: 'C-answers-call', phone: '+31612340999' }, comment: 'Slow', answered_at: at(22) }));
  const list = async (q) => (await call(keys.manager, 'GET', `/v1/surveys?touchpoint=ui-answers&limit=20${q}`)).body;

  const page = await signedIn('manager', '', { timezoneId: 'Asia/Kolkata', locale: 'en-GB' });
  await page.click('#nav a[data-view=answers]');
  await page.waitForSelector('#answers-filter');
  await page.fill('#answers-touchpoint', 'ui-answers');
  await page.click('#answers-filter button[type=submit]');
  await page.waitForURL(/#\/answers\?touchpoint=ui-answers$/);
  const first = await list('');
  assert.equal(first.surveys.length, 20);
  await answersShown(page, first.surveys);

  // What each one says: score, category, touchpoint, channel, local time, customer, callback.
  const called = page.locator(`#answer-${made[22].id}`);
  assert.equal(await called.locator('.score').textContent(), '3');
  assert.match(await called.textContent(), /ui-answers · detractor · /);
  assert.equal(await called.locator('time').textContent(),
    new Date(at(22)).toLocaleString('en-GB', { timeZone: 'Asia/Kolkata' }));
  assert.equal(await called.locator('.customer-id').textContent(), 'C-answers-call');
  assert.equal(await called.locator('a.callback').getAttribute('href'), `#/callbacks/${made[22].callback.id}`);
  assert.equal(await called.locator('.comment').textContent(), 'Slow');
  const promoter = page.locator(`#answer-${made[21].id}`);
  assert.match(await promoter.textContent(), /^10ui-answers via app · promoter · .*Customer C-answers-21 · no callbackNo comment\./);

  // Older, as the API pages them from next_cursor; Newer and Newest back.
  await page.click('#older-answers');
  const second = await list(`&cursor=${first.next_cursor}`);
  assert.equal(second.surveys.length, 3);
  await answersShown(page, second.surveys);
  assert.match(await page.textContent('#answers-card h2'), /page 2/);
  assert.equal(await page.locator('#older-answers').count(), 0);
  await page.click('#newer-answers');
  await answersShown(page, first.surveys);
  await page.click('#older-answers');
  await answersShown(page, second.surveys);
  await page.click('#newest-answers');
  await answersShown(page, first.surveys);
  assert.equal(await page.locator('#newest-answers, #newer-answers').count(), 0);

  // Detractors only.
  await page.selectOption('#answers-max-score', '6');
  await page.click('#answers-filter button[type=submit]');
  await page.waitForURL(/max_score=6/);
  const low = await list('&max_score=6');
  assert.ok(low.surveys.length > 5 && low.surveys.every((s) => s.score <= 6));
  await answersShown(page, low.surveys);

  // From and to in the manager's own time (India here), sent as the instants they are.
  const kolkata = (iso) => new Date(Date.parse(iso) + 330 * 60000).toISOString().slice(0, 19);
  await page.selectOption('#answers-max-score', '');
  await page.fill('#answers-from', kolkata(at(5)));
  await page.fill('#answers-to', kolkata(at(9)));
  await page.click('#answers-filter button[type=submit]');
  await page.waitForURL(new RegExp(`from=${encodeURIComponent(at(5))}&to=${encodeURIComponent(at(9))}$`));
  const range = await list(`&from=${at(5)}&to=${at(9)}`);
  assert.deepEqual(range.surveys.map((s) => s.id), made.slice(5, 9).map((s) => s.id).reverse());
  await answersShown(page, range.surveys);

  // One customer's.
  await page.fill('#answers-from', '');
  await page.fill('#answers-to', '');
  await page.fill('#answers-customer', 'C-answers-7');
  await page.click('#answers-filter button[type=submit]');
  await answersShown(page, [made[7]]);

  // A to before from: the API's 400 names it, and the form marks it.
  await page.fill('#answers-customer', '');
  await page.fill('#answers-from', kolkata(at(9)));
  await page.fill('#answers-to', kolkata(at(5)));
  await page.click('#answers-filter button[type=submit]');
  await page.waitForSelector('#notice.error');
  const refused = (await call(keys.manager, 'GET', `/v1/surveys?touchpoint=ui-answers&from=${at(9)}&to=${at(5)}`)).body;
  assert.equal(await page.textContent('#notice'), `${refused.error.message} (to)`);
  assert.equal(await page.getAttribute('#answers-to', 'aria-invalid'), 'true');
  assert.equal(await page.inputValue('#answers-touchpoint'), 'ui-answers');
  await done(page);

  // A bad value in the address: the API's message, the field marked, the page without it.
  const bad = await signedIn('manager', '#/answers?touchpoint=ui-answers&max_score=11');
  await bad.waitForSelector('#unfiltered');
  const eleven = (await call(keys.manager, 'GET', '/v1/surveys?max_score=11')).body;
  assert.equal(await bad.textContent('#notice'), `${eleven.error.message} (max_score)`);
  assert.equal(await bad.getAttribute('#answers-max-score', 'aria-invalid'), 'true');
  await bad.click('#unfiltered');
  await bad.waitForSelector('#answers > li');
  assert.equal(await bad.locator('#unfiltered').count(), 0);
  await done(bad);
  assert.equal((await call(keys.manager, 'POST', `/v1/callbacks/${made[22].callback.id}/cancel`)).status, 200);
});

test('on the Answers page a manager narrows the answers to one channel and to promoters, passives or detractors', async () => {
  // Scores 0 to 10, on the web and in the app by turns.
  const made = [];
  for (let i = 0; i <= 10; i++) {
    made.push(await answer('ui-answers-cat', i, { customer: { id: `C-cat-${i}` }, channel: i % 2 ? 'app' : 'web', contact_consent: false }));
  }
  const list = async (q) => (await call(keys.manager, 'GET', `/v1/surveys?touchpoint=ui-answers-cat${q}`)).body.surveys;
  const page = await signedIn('manager', '#/answers?touchpoint=ui-answers-cat');
  await answersShown(page, [...made].reverse());

  // The web's promoters: 10 alone (9 came through the app).
  await page.fill('#answers-channel', 'web');
  await page.selectOption('#answers-min-score', '9');
  await page.click('#answers-filter button[type=submit]');
  await page.waitForURL(/#\/answers\?touchpoint=ui-answers-cat&channel=web&min_score=9$/);
  assert.deepEqual((await list('&channel=web&min_score=9')).map((s) => s.score), [10]);
  await answersShown(page, [made[10]]);
  assert.match(await page.textContent('#answers-min-score option:checked'), /promoters/);

  // Every channel's passives: a lowest and a highest score.
  await page.fill('#answers-channel', '');
  await page.selectOption('#answers-min-score', '7');
  await page.selectOption('#answers-max-score', '8');
  await page.click('#answers-filter button[type=submit]');
  await page.waitForURL(/touchpoint=ui-answers-cat&min_score=7&max_score=8$/);
  await answersShown(page, [made[8], made[7]]);

  // The app's detractors.
  await page.fill('#answers-channel', 'app');
  await page.selectOption('#answers-min-score', '');
  await page.selectOption('#answers-max-score', '6');
  await page.click('#answers-filter button[type=submit]');
  await page.waitForURL(/channel=app&max_score=6$/);
  await answersShown(page, [made[5], made[3], made[1]]);

  // The bounds swapped: the API's 400 names the lowest score, and the form marks it.
  await page.fill('#answers-channel', '');
  await page.selectOption('#answers-min-score', '9');
  await page.click('#answers-filter button[type=submit]');
  await page.waitForSelector('#notice.error');
  const swapped = (await call(keys.manager, 'GET', '/v1/surveys?min_score=9&max_score=6')).body;
  assert.equal(await page.textContent('#notice'), `${swapped.error.message} (min_score)`);
  assert.equal(await page.getAttribute('#answers-min-score', 'aria-invalid'), 'true');
  assert.equal(await page.inputValue('#answers-max-score'), '6');
  await done(page);

  // A channel the API refuses, in an address: its message, the field marked.
  const bad = await signedIn('manager', '#/answers?channel=Web');
  await bad.waitForSelector('#unfiltered');
  const refused = (await call(keys.manager, 'GET', '/v1/surveys?channel=Web')).body;
  assert.equal(await bad.textContent('#notice'), `${refused.error.message} (channel)`);
  assert.equal(await bad.getAttribute('#answers-channel', 'aria-invalid'), 'true');
  assert.equal(await bad.inputValue('#answers-channel'), 'Web');
  await done(bad);
});

test('on the Answers page a manager leaves a promoter\'s answer out of the NPS, and counts it again, by keys', async () => {
  const survey = await answer('ui-answers-out', 10, { customer: { id: 'C-answers-out' }, contact_consent: false });
  assert.equal(survey.callback, null);
  const nps = async () => {
    const r = (await call(keys.manager, 'GET', '/v1/nps?touchpoint=ui-answers-out')).body;
    return [r.responses, r.excluded];
  };
  assert.deepEqual(await nps(), [1, 0]);
  const page = await signedIn('manager', '#/answers?touchpoint=ui-answers-out');
  const item = page.locator(`#answer-${survey.id}`);
  await item.waitFor();
  const patches = [];
  page.on('request', (request) => { if (request.method() === 'PATCH') patches.push([request.url(), request.postDataJSON()]); });
  await item.locator('button.exclude').focus();
  await page.keyboard.press('Enter');
  const reason = item.locator('.exclude-form [name=reason]');
  assert.equal(await page.evaluate(() => document.activeElement.name), 'reason');
  await reason.fill('   ');
  await reason.press('Enter');
  await page.waitForFunction(() => /Say why/.test(document.querySelector('#notice').textContent));
  assert.equal(await reason.getAttribute('aria-invalid'), 'true');
  assert.deepEqual(patches, []);

  await reason.fill('sent by <b>QA</b>');
  await reason.press('Enter');
  await item.locator('.excluded').waitFor();
  assert.equal(await item.locator('.excluded').textContent(), 'Left out of the NPS: sent by <b>QA</b>');
  assert.deepEqual(patches, [[`${base}/v1/surveys/${survey.id}`, { excluded: true, reason: 'sent by <b>QA</b>' }]]);
  assert.deepEqual(await nps(), [0, 1]);
  // The keys stay on that answer: its button to count it again has the focus.
  await page.waitForFunction(() => document.activeElement.classList.contains('include'));
  await page.keyboard.press('Enter');
  await item.locator('button.exclude').waitFor();
  assert.equal(await item.locator('.excluded').count(), 0);
  assert.deepEqual(patches[1], [`${base}/v1/surveys/${survey.id}`, { excluded: false }]);
  assert.deepEqual(await nps(), [1, 0]);
  await done(page);
});

test('an agent is not offered the answers, and is told so at their address', async () => {
  const page = await signedIn('agent');
  await page.waitForSelector('#claim');
  assert.equal(await page.isHidden('#nav a[data-view=answers]'), true);
  await page.goto(`${base}/ui/#/answers`);
  await page.waitForFunction(() => /Answers are for managers/.test(document.querySelector('#main').textContent));
  assert.equal(await page.locator('#answers, #answers-filter').count(), 0);
  assert.equal((await call(keys.agent, 'GET', '/v1/surveys')).status, 403);
  await done(page);
  const manager = await signedIn('manager');
  await manager.waitForSelector('#stats');
  assert.equal(await manager.isVisible('#nav a[data-view=answers]'), true);
  await done(manager);
});

test('an answer\'s comment and customer id show as text, on a 360 px phone without sideways scrolling', async () => {
  const comment = `<img src=x onerror="window.pwned=1"><b>Great</b> ${'w'.repeat(300)}\nsecond line`;
  const customer = `<i>C</i>${'9'.repeat(120)}`;
  const survey = await answer('ui-answers-text', 9, { customer: { id: customer }, comment, contact_consent: false });
  const page = await signedIn('manager', '#/answers?touchpoint=ui-answers-text', { viewport: { width: 360, height: 740 } });
  const item = page.locator(`#answer-${survey.id}`);
  await item.waitFor();
  assert.equal(await item.locator('.comment').textContent(), comment);
  assert.equal(await item.locator('.customer-id').textContent(), customer);
  assert.equal(await page.locator('#main img, #main b, #main i').count(), 0);
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  const [wide, room] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert.ok(wide <= room, `the Answers page is ${wide} px wide at ${room}`);
  const right = await page.locator('#sign-out').evaluate((b) => b.getBoundingClientRect().right);
  assert.ok(right <= room, `Sign out ends at ${right} px`);
  await done(page);
});
