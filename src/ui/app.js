// The npsd console: agents take the next customer to call, read the context and record
// the outcome; managers read NPS by touchpoint, its trend, the queue, the improvements and
// every answer (leaving one out of the NPS), and manage the webhooks that push alerts to
// their phones.
// Everything goes through the REST API with the token its user signs in with; the token
// lives in sessionStorage, so it goes when the tab closes. Text from customers and agents
// is only ever set as text (never as HTML), and the page's CSP allows no other script.
'use strict';

const TOKEN_KEY = 'npsd.token';
// The touchpoint an agent last asked the next call for ('' for any): an agent of a team
// (the claims) goes on taking that team's calls from a call's page and the Calls page.
const CLAIM_TOUCHPOINT_KEY = 'npsd.claim.touchpoint';
// A lease is renewed at a third of what is left of it, between these bounds.
const HEARTBEAT_MIN_MS = 5 * 1000;
const HEARTBEAT_MAX_MS = 60 * 1000;
const RATE_LIMITED_TRIES = 4;
// A 429 is asked again after its Retry-After, never sooner, up to this: npsd asks for at
// most 60 s (a report's place in its queue). A longer one (a proxy's) is the page's error
// to show, with Try again, rather than a page that seems to hang.
const RATE_LIMITED_WAIT_MAX_S = 60;
// The reports page says itself when it asks again: it waits in place only this long.
const RATE_LIMITED_OWN_WAIT_S = 5;
// The Calls page reads the queue again this often, unless its user is typing there.
const CALLS_REFRESH_MS = 30 * 1000;

const OUTCOMES = [
  ['reached', 'Reached'],
  ['declined', 'Declined to talk'],
  ['no_answer', 'No answer'],
  ['busy', 'Busy'],
  ['voicemail', 'Voicemail'],
  ['call_later', 'Call later'],
  ['wrong_number', 'Wrong number'],
  ['do_not_call', 'Do not call again'],
];
function outcomeLabel(outcome) {
  const known = OUTCOMES.find(([value]) => value === outcome);
  return known ? known[1] : outcome || '';
}

const IMPROVEMENTS_MAX = 20;
// SPEC's touchpoint: for the inputs' pattern attribute, and to check one read from the URL.
const TOUCHPOINT = '[a-z0-9_.\\-]{1,64}';
const isTouchpoint = (text) => new RegExp(`^${TOUCHPOINT}$`).test(text);
const AREAS = ['process', 'communication', 'service', 'product', 'other'];
const STATUSES = ['queued', 'claimed', 'done', 'unreachable', 'cancelled'];
const PERIODS = [
  [7, 'Last 7 days', 'day'],
  [30, 'Last 30 days', 'day'],
  [90, 'Last 90 days', 'week'],
  [365, 'Last 12 months', 'month'],
];

// Who the signed-in key is ({name, role}, from GET /v1/me): the console offers each role
// only what it may do; the API checks every call all the same.
let me = null;
const may = {
  claim: () => me && (me.role === 'agent' || me.role === 'admin'),
  cancel: () => me && (me.role === 'manager' || me.role === 'admin'),
  report: () => me && (me.role === 'manager' || me.role === 'admin'),
  webhooks: () => me && (me.role === 'manager' || me.role === 'admin'),
  answers: () => me && (me.role === 'manager' || me.role === 'admin'),
};

// Per view: what to stop (timers) when the user goes elsewhere.
let leaving = [];
// Counts the views gone to: a view whose answers arrive after the user went on draws nothing.
let generation = 0;

// The whole seconds of a 429's or 503's Retry-After (when npsd will take the request), or
// null when there is none.
function retryAfterSeconds(headers) {
  const seconds = Number(headers ? headers.get('Retry-After') : NaN);
  return Number.isInteger(seconds) && seconds > 0 ? seconds : null;
}

class ApiError extends Error {
  constructor(status, body, headers = null) {
    const error = body && body.error ? body.error : {};
    super(error.message || `the server answered ${status}`);
    this.status = status;
    this.code = error.code || '';
    this.field = error.field || null;
    this.retryAfter = retryAfterSeconds(headers);
  }
}

// ---------- small DOM helpers ----------

// Whether a child or attribute given to h() or render() is there: null, undefined and false
// stand for "nothing here", so that views can write `cond ? node : null`.
function present(value) {
  return value !== null && value !== undefined && value !== false;
}

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (!present(value)) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat().filter(present)) {
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

// A table cell's long text (a URL, what someone typed): a few lines of it, the rest
// scrolled to in place (and shown whole on the page its row links to), so that one long
// value makes neither a column a few letters wide nor a row a screen tall.
function clamped(text) {
  return h('div', { class: 'clamp' }, text);
}

function svg(tag, attrs) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  return el;
}

function render(...nodes) {
  const main = document.getElementById('main');
  main.replaceChildren(...nodes.filter(present));
  const heading = main.querySelector('h1');
  if (heading) document.title = `${heading.textContent} · npsd`;
}

function notify(message, kind) {
  const notice = document.getElementById('notice');
  notice.textContent = message || '';
  notice.className = kind || 'info';
  notice.hidden = !message;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : '—';
}

function figure(value, digits = 1) {
  return value === null || value === undefined ? '—' : Number(value).toFixed(digits);
}

function rfc3339(date) {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// A datetime-local input's value for the instant ms, in the browser's own time zone: to the
// minute (16 characters) or to the second (19).
function localInput(ms, length = 16) {
  return new Date(ms - new Date(ms).getTimezoneOffset() * 60000).toISOString().slice(0, length);
}

// Runs work with button disabled, so that a double click claims or saves once. work
// answers true when it has moved the user on (a new view is coming): the button stays off
// until that view replaces it, however long drawing it takes.
async function busy(button, work) {
  if (button.disabled) return;
  button.disabled = true;
  let movedOn = false;
  try {
    movedOn = await work();
  } finally {
    if (!movedOn) button.disabled = false;
  }
}

// A list the API hands out a page at a time, newest first, redrawn in place by reload():
// cursors holds the next_cursor of each page gone past (none on the newest page). lost(err)
// is true when an error took the whole page away (the view has moved on).
function pager(reload, lost = () => false) {
  const p = {
    cursors: [],
    cursor: () => (p.cursors.length ? p.cursors[p.cursors.length - 1] : null),
    turn: (to) => (event) => busy(event.currentTarget, async () => {
      const before = p.cursors;
      p.cursors = to;
      try {
        await reload();
      } catch (err) {
        p.cursors = before;
        if (lost(err)) return true;
        failed(err);
        return false;
      }
      return true; // redrawn, this button with it
    }),
    // Newest, Newer and Older, where there are pages that way; their ids end in name.
    buttons: (name, shown, next) => [
      p.cursors.length ? h('button', { type: 'button', class: 'link', id: `newest-${name}`, onclick: p.turn([]) }, 'Newest') : null,
      p.cursors.length ? h('button', { type: 'button', class: 'link', id: `newer-${name}`, onclick: p.turn(p.cursors.slice(0, -1)) }, `Newer ${shown}`) : null,
      next ? h('button', { type: 'button', class: 'link', id: `older-${name}`, onclick: p.turn([...p.cursors, next]) }, `Older ${shown}`) : null,
    ],
  };
  return p;
}

// ---------- the API ----------

// The server's clock less the browser's, from each answer's Date header: a lease ends by the
// server's clock, and an agent's PC may run minutes behind.
let skewMs = 0;

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

// Waits ms on the page's own timer, which a hidden tab's browser may fire a minute late.
// Only a lease's renewal has a deadline at npsd that a late wait misses: every other wait
// follows a request made in front (a save, a claim, a page opened), or a late one costs
// nothing (the queue's refresh, the reports asked again). So only the renewals wait in the
// lease's worker.
const pageWait = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

// The notice of a 429's wait and the one it covers: a page that seems stuck for seconds
// says why, and what was said before comes back once the wait is over (unless something
// else was said meanwhile). Waits at once (a page's reads go out together) share the one
// covered.
let slowed = null;

async function waitOut(seconds, wait, message) {
  const notice = document.getElementById('notice');
  const before = slowed && notice.textContent === slowed.text
    ? slowed.before : { text: notice.hidden ? '' : notice.textContent, kind: notice.className };
  const at = new Date(Date.now() + seconds * 1000).toLocaleTimeString();
  const text = `npsd asked to wait (${message}): trying again in ${seconds} s, at ${at}.`;
  slowed = { text, before };
  notify(text, 'info');
  await wait(seconds * 1000);
  if (notice.textContent === text) notify(before.text, before.kind);
}

// wait(ms) times the wait before asking again after a 429: a request that must not be late
// in a hidden tab (a lease's renewal) passes its lease timer's, counted in the worker.
// signal (an AbortController's) lets a page drop a request it no longer needs. A page that
// tells its user when it asks again (the reports) passes ownWait: a 429 whose Retry-After
// is longer than RATE_LIMITED_OWN_WAIT_S is then thrown at once. No request is asked again
// before npsd said it would take it.
async function api(method, path, body, { wait = pageWait, signal, ownWait = false } = {}) {
  const init = { method, headers: { Authorization: `Bearer ${token()}` }, signal };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  // Relative to the console's own address, so npsd may sit under a prefix of a proxy.
  const url = new URL(`../${path}`, location.href);
  let response = await fetch(url, init);
  // A 429 was refused before anything was done, so asking again is safe: a page's first
  // reads go out together, and a key's burst (server.rate_limit) may be smaller than them.
  for (let tries = 1; response.status === 429 && tries <= RATE_LIMITED_TRIES; tries++) {
    const asked = retryAfterSeconds(response.headers) || 1;
    if (asked > (ownWait ? RATE_LIMITED_OWN_WAIT_S : RATE_LIMITED_WAIT_MAX_S)) break;
    let refusal = null;
    try {
      refusal = await response.clone().json(); // read again below if this was the last try
    } catch (e) {
      refusal = null;
    }
    await waitOut(asked, wait, (refusal && refusal.error && refusal.error.message) || 'too many requests');
    response = await fetch(url, init);
  }
  const served = Date.parse(response.headers.get('Date') || '');
  if (!Number.isNaN(served)) skewMs = served - Date.now();
  let data = null;
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
  }
  if (response.status === 401) {
    signOut('The key is unknown or was revoked: sign in again.');
    throw new ApiError(401, data);
  }
  if (!response.ok) throw new ApiError(response.status, data, response.headers);
  return { status: response.status, data };
}

function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== '') q.set(key, value);
  }
  const text = q.toString();
  return text ? `?${text}` : '';
}

function failed(err) {
  if (err instanceof ApiError && err.status === 401) return;
  if (!(err instanceof ApiError)) {
    notify(`npsd cannot be reached (${err.message}): try again in a moment.`, 'error');
    return;
  }
  notify(err.field ? `${err.message} (${err.field})` : err.message, 'error');
}

// ---------- signing in ----------

// A key refused (401) goes alone: its user signs in again and finds their drafts. Signing
// out on purpose forgets the drafts too, which hold what customers said.
function signOut(message, everything = false) {
  if (everything) sessionStorage.clear();
  else sessionStorage.removeItem(TOKEN_KEY);
  me = null;
  freshSecret = null;
  route();
  if (message) notify(message, 'error');
}

function showSignIn() {
  document.getElementById('nav').hidden = true;
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true });
  const form = h('form', { id: 'sign-in', class: 'card narrow' },
    h('h1', {}, 'Sign in'),
    h('p', {}, 'Paste the API key ops gave you (an agent, manager or admin key).'),
    h('label', { for: 'token' }, 'API key'), input,
    h('button', { type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    try {
      const who = (await api('GET', 'v1/me')).data;
      if (who.role === 'ingest') {
        sessionStorage.removeItem(TOKEN_KEY);
        notify('This key may not use the console: it needs the agent, manager or admin role.', 'error');
        return;
      }
      me = who;
      notify('');
      route();
    } catch (err) {
      sessionStorage.removeItem(TOKEN_KEY);
      if (err.status !== 401) failed(err);
    }
  });
  render(form);
  input.focus();
}

// ---------- calls: the queue ----------

function callbackRow(cb) {
  const customer = cb.customer || {};
  return h('tr', {},
    h('td', {}, h('a', { href: `#/callbacks/${cb.id}` }, `#${cb.id}`)),
    h('td', { dir: 'auto' }, clamped(customer.name || customer.id || '')),
    h('td', {}, cb.touchpoint || ''),
    h('td', { class: 'num' }, cb.priority),
    h('td', {}, when(cb.due_at)),
    h('td', { class: cb.sla_breached ? 'late' : '' }, when(cb.sla_deadline)),
    h('td', {}, cb.status === 'claimed' ? h('bdi', {}, cb.claimed_by || '') : outcomeLabel(cb.outcome)));
}

function statsCards(s) {
  const card = (label, value) => h('div', { class: 'stat' }, h('span', { class: 'value' }, value), h('span', {}, label));
  const age = s.oldest_due_age_seconds ? `${Math.round(s.oldest_due_age_seconds / 60)} min` : '—';
  return h('div', { class: 'stats', id: 'stats' },
    card('due now', s.due),
    card('in the queue', s.queue_depth),
    card('being called', s.claimed),
    card('oldest due waiting', age),
    card('SLA met (30 days)', s.sla_met_percent === null ? '—' : `${figure(s.sla_met_percent)}%`),
    card('median wait for a first call', s.median_minutes_to_first_call === null ? '—' : `${figure(s.median_minutes_to_first_call)} min`),
    card('low scores reached', s.low_scores_reached_percent === null ? '—' : `${figure(s.low_scores_reached_percent)}%`));
}

async function takeNextCall(touchpoint) {
  sessionStorage.setItem(CLAIM_TOUCHPOINT_KEY, touchpoint);
  try {
    const result = await api('POST', 'v1/callbacks/claim', touchpoint ? { touchpoint } : undefined);
    if (result.status === 204) {
      notify(touchpoint ? `Nobody is due for a call at ${touchpoint} now.` : 'Nobody is due for a call now.', 'info');
      return false;
    }
    go(`#/callbacks/${result.data.id}`);
    return true;
  } catch (err) {
    if (err.status === 403) notify('Only agents take calls: this key may not claim.', 'error');
    else failed(err);
    return false;
  }
}

// The view that the queue's refresh asks for, and the notice of a refresh that failed: a
// refresh that cannot read the queue (npsd busy a moment, the network) leaves the page as
// it was, its claim form with it, says so, and is tried again at the next refresh.
let callsRefresh = 0;
let callsStale = null;

async function showCalls(params, view) {
  const status = STATUSES.includes(params.get('status')) ? params.get('status') : 'queued';
  const touchpoint = params.get('touchpoint') || '';
  const refreshing = callsRefresh === view;
  const keepRefreshing = () => {
    const refresh = setInterval(() => {
      const typing = document.activeElement && ['INPUT', 'SELECT', 'TEXTAREA'].includes(document.activeElement.tagName);
      if (typing) return;
      callsRefresh = generation + 1; // the view route() is about to draw
      route(true);
    }, CALLS_REFRESH_MS);
    leaving.push(() => clearInterval(refresh));
  };
  let stats;
  let list;
  let claimed;
  try {
    [stats, list, claimed] = await Promise.all([
      api('GET', 'v1/callbacks/stats'),
      api('GET', `v1/callbacks${query({ status, touchpoint, limit: 50 })}`),
      may.claim() ? api('GET', 'v1/callbacks?status=claimed&limit=100') : null,
    ]);
  } catch (err) {
    if (!refreshing || view !== generation) throw err;
    keepRefreshing();
    callsStale = `The queue could not be read again (${err.message}): it shows what it held before, `
      + 'and is read again in 30 seconds.';
    notify(callsStale, 'error');
    return;
  }
  // An agent who closed the tab mid-call finds it again here (by their key, not its name,
  // which a namesake's key may share).
  const mine = claimed ? claimed.data.callbacks.filter((cb) => cb.claimed_by_key_id === me.key_id) : [];

  const claimTouchpoint = h('input', {
    id: 'claim-touchpoint', name: 'touchpoint', pattern: TOUCHPOINT, placeholder: 'any',
    value: sessionStorage.getItem(CLAIM_TOUCHPOINT_KEY) || null,
  });
  const claim = h('form', { id: 'claim', class: 'card' },
    h('h2', {}, 'Next call'),
    h('label', { for: 'claim-touchpoint' }, 'Touchpoint (optional)'), claimTouchpoint,
    h('button', { type: 'submit' }, 'Call next customer'));
  claim.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(claim.querySelector('button[type=submit]'), () => takeNextCall(claimTouchpoint.value.trim()));
  });


  const statusSelect = h('select', { id: 'list-status', name: 'status' },
    STATUSES.map((s) => h('option', { value: s, selected: s === status }, s)));
  const touchpointInput = h('input', { id: 'list-touchpoint', name: 'touchpoint', value: touchpoint, placeholder: 'any', pattern: TOUCHPOINT });
  const filter = h('form', { class: 'filter' },
    h('label', { for: 'list-status' }, 'Status'), statusSelect,
    h('label', { for: 'list-touchpoint' }, 'Touchpoint'), touchpointInput,
    h('button', { type: 'submit' }, 'Show'));
  filter.addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = `#/calls${query({ status: statusSelect.value, touchpoint: touchpointInput.value.trim() })}`;
  });

  if (view !== generation) return;
  keepRefreshing();
  if (callsStale !== null && document.getElementById('notice').textContent === callsStale) notify('');
  callsStale = null;
  const rows = list.data.callbacks.map(callbackRow);
  render(
    h('h1', {}, 'Calls'),
    statsCards(stats.data),
    may.claim() ? claim : null,
    mine.length
      ? h('section', { class: 'card', id: 'mine' }, h('h2', {}, 'Your calls in progress'),
        h('ul', {}, mine.map((cb) => h('li', {}, h('a', { href: `#/callbacks/${cb.id}` }, `#${cb.id}`), ' ',
          h('span', { dir: 'auto' }, (cb.customer && (cb.customer.name || cb.customer.id)) || ''),
          ` · lease until ${when(cb.lease_expires_at)}`))))
      : null,
    h('section', { class: 'card' },
      h('h2', {}, status === 'queued' ? 'The queue, in call order' : `Callbacks ${status}`),
      filter,
      rows.length
        ? h('div', { class: 'wide' }, h('table', { id: 'callbacks' },
          h('thead', {}, h('tr', {}, ['Callback', 'Customer', 'Touchpoint', 'Priority', 'Due', 'SLA deadline', status === 'claimed' ? 'Agent' : 'Outcome'].map((t) => h('th', {}, t)))),
          h('tbody', {}, rows)))
        : h('p', { class: 'empty' }, 'None.'),
      list.data.next_cursor ? h('p', { class: 'more' }, 'The 50 first are shown.') : null));
}

// ---------- calls: one callback ----------

// Whether an answer counts in the NPS and, to a manager, the means to leave it out (a test
// answer, a duplicate) or to count it again. A reason is asked for: the answer stays
// listed, and whoever finds it left out later reads why. redraw shows the answer as it is
// now, after a change or once it is found erased; it answers what busy() takes (true: the
// button went with the old drawing). By default the whole view is drawn again.
function exclusion(s, redraw = () => { route(true); return true; }) {
  const mark = s.excluded
    ? h('p', { class: 'excluded' }, h('strong', {}, 'Left out of the NPS'),
      s.exclude_reason ? [': ', h('span', { class: 'reason', dir: 'auto' }, s.exclude_reason)] : null)
    : null;
  if (!may.report()) return mark;
  const box = h('div', { class: 'exclusion', 'data-survey': s.id }, mark);
  const change = (body, done, field) => async () => {
    try {
      await api('PATCH', `v1/surveys/${s.id}`, body);
    } catch (err) {
      if (err.status === 404) {
        notify(`Answer #${s.id} no longer exists: it was erased meanwhile.`, 'error');
        return redraw();
      }
      failed(err);
      if (err.status === 400 && field) markInvalid(field.form, err.field);
      return false;
    }
    notify(done, 'info');
    return redraw();
  };
  if (s.excluded) {
    box.append(h('button', {
      type: 'button', class: 'link include',
      onclick: (event) => busy(event.currentTarget, change({ excluded: false }, `Answer #${s.id} counts in the NPS again.`)),
    }, 'Count it in the NPS again'));
    return box;
  }
  const reason = h('input', { name: 'reason', 'data-field': 'reason', required: true, placeholder: 'e.g. test answer' });
  const leave = h('button', { type: 'submit' }, 'Leave it out');
  const form = h('form', { class: 'exclude-form', hidden: true },
    h('label', {}, 'Why it does not count (required; shown with the answer)', reason),
    h('div', { class: 'actions' }, leave, h('button', {
      type: 'button', class: 'link', onclick: () => { form.hidden = true; open.hidden = false; open.focus(); },
    }, 'Cancel')));
  const open = h('button', {
    type: 'button', class: 'link exclude', onclick: () => { form.hidden = false; open.hidden = true; reason.focus(); },
  }, 'Leave out of the NPS');
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    // Spaces alone pass the browser's required: no reason all the same.
    if (!reason.value.trim()) {
      notify('Say why this answer does not count: the reason is shown with it.', 'error');
      markInvalid(form, 'reason');
      return;
    }
    busy(leave, change({ excluded: true, reason: reason.value.trim() },
      `Answer #${s.id} is left out of every NPS figure (it stays listed).`, reason));
  });
  box.append(open, form);
  return box;
}

function surveyItem(s) {
  const attributes = s.attributes ? Object.entries(s.attributes).map(([k, v]) => `${k}: ${v}`).join(', ') : '';
  return h('li', { class: 'survey' },
    h('span', { class: `score ${s.category}` }, s.score),
    h('div', {},
      h('div', {}, h('strong', {}, s.touchpoint), s.channel ? ` via ${s.channel}` : '', ` · ${when(s.answered_at)}`),
      s.comment ? h('blockquote', { class: 'comment', dir: 'auto' }, s.comment) : h('p', { class: 'empty' }, 'No comment.'),
      attributes ? h('p', { class: 'attributes', dir: 'auto' }, attributes) : null,
      exclusion(s)));
}

function historyItem(item) {
  if (item.type === 'survey') {
    return h('li', { class: 'answer' }, `${when(item.at)}: scored ${item.score} at ${item.touchpoint}`,
      item.comment ? h('blockquote', { class: 'comment', dir: 'auto' }, item.comment) : null,
      exclusion(item));
  }
  return h('li', {}, `${when(item.at)}: call`, item.outcome ? ` (${outcomeLabel(item.outcome)})` : '',
    item.agent ? [' by ', h('bdi', {}, item.agent)] : null,
    item.notes ? h('blockquote', { class: 'comment', dir: 'auto' }, item.notes) : null);
}

function improvementRow(removed, idea = { area: 'process', text: '' }) {
  const row = h('div', { class: 'improvement' },
    h('select', { name: 'area', 'aria-label': 'Area' }, AREAS.map((a) => h('option', { value: a, selected: a === idea.area }, a))),
    h('input', { name: 'text', 'aria-label': 'What to improve', placeholder: 'What should we improve?', value: idea.text }),
    h('button', { type: 'button', class: 'link', onclick: () => { row.remove(); removed(); } }, 'Remove'));
  return row;
}

// What an agent typed for a call and has not saved yet, kept in the tab's sessionStorage per
// callback: a reload, a lost lease or a revoked key does not throw it away.
const draftKey = (id) => `npsd.draft.${id}`;

function readDraft(id) {
  try {
    return JSON.parse(sessionStorage.getItem(draftKey(id)) || 'null');
  } catch (e) {
    return null;
  }
}

function draftCard(cb) {
  const draft = readDraft(cb.id);
  if (!draft || !(draft.outcome || draft.notes || draft.improvements.some((i) => i.text))) return null;
  const later = draft.outcome === 'call_later' && draft.retry_at ? `, call again at ${draft.retry_at.replace('T', ' ')}` : '';
  const card = h('section', { class: 'card', id: 'draft' },
    h('h2', {}, 'What you typed and did not save'),
    draft.outcome ? h('p', {}, `Outcome: ${outcomeLabel(draft.outcome)}${later}`) : null,
    draft.notes ? h('p', { class: 'comment', dir: 'auto' }, draft.notes) : null,
    h('ul', {}, draft.improvements.filter((i) => i.text).map((i) => h('li', {}, h('strong', {}, i.area), ': ', h('span', { dir: 'auto' }, i.text)))),
    h('button', { type: 'button', class: 'link', onclick: () => { sessionStorage.removeItem(draftKey(cb.id)); card.remove(); } }, 'Discard'));
  return card;
}

function completeForm(cb) {
  const outcome = h('select', { id: 'outcome', name: 'outcome', 'data-field': 'outcome', required: true },
    h('option', { value: '' }, 'Choose…'),
    OUTCOMES.map(([value, label]) => h('option', { value }, label)));
  // In the agent's own time zone, within the 30 days the API takes.
  const retryAt = h('input', {
    id: 'retry-at', name: 'retry_at', 'data-field': 'retry_at', type: 'datetime-local',
    min: localInput(Date.now()), max: localInput(Date.now() + 30 * 86400 * 1000),
  });
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const retryLabel = h('label', { for: 'retry-at' }, `Call again at (the customer's choice; your time, ${zone})`);
  const retry = h('div', { hidden: true }, retryLabel, retryAt);
  // The time is asked for in the browser: the customer chose one, and the API needs it.
  const showRetry = () => {
    retry.hidden = outcome.value !== 'call_later';
    retryAt.required = !retry.hidden;
  };
  outcome.addEventListener('change', showRetry);
  // No maxlength here or on an idea: it would cut a pasted text without a word (and counts
  // UTF-16 units, not the API's characters). The API judges, and its 400 names the field.
  const notes = h('textarea', { id: 'notes', name: 'notes', rows: 3, 'data-field': 'notes' });
  const improvements = h('div', { id: 'improvements' });
  const form = h('form', { id: 'complete', class: 'card' },
    h('h2', {}, 'Record the call'),
    h('label', { for: 'outcome' }, 'Outcome'), outcome, retry,
    h('label', { for: 'notes' }, 'Notes'), notes,
    h('fieldset', {}, h('legend', {}, 'What to improve (process, communication, service…)'), improvements,
      h('button', {
        type: 'button', id: 'add-improvement', class: 'link', onclick: (event) => {
          improvements.append(improvementRow(() => { event.target.disabled = false; }));
          // The API takes at most 20 a call.
          event.target.disabled = improvements.children.length >= IMPROVEMENTS_MAX;
        },
      }, 'Add an improvement')),
    h('button', { type: 'submit' }, 'Save'));
  // Enter in a one-line field (an improvement's text, the time) would submit the form and
  // close the call while the agent is still writing: only Save saves.
  form.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.isComposing && event.target instanceof HTMLInputElement) event.preventDefault();
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(form.querySelector('button[type=submit]'), () => saveOutcome(cb, outcome, retryAt, notes, improvements));
  });

  const add = form.querySelector('#add-improvement');
  const ideas = () => [...improvements.querySelectorAll('.improvement')]
    .map((row) => ({ area: row.querySelector('[name=area]').value, text: row.querySelector('[name=text]').value }));
  const draft = readDraft(cb.id);
  if (draft) {
    outcome.value = draft.outcome || '';
    retryAt.value = draft.retry_at || '';
    showRetry();
    notes.value = draft.notes || '';
    for (const idea of draft.improvements.slice(0, IMPROVEMENTS_MAX)) {
      improvements.append(improvementRow(() => { add.disabled = false; }, idea));
    }
    add.disabled = improvements.children.length >= IMPROVEMENTS_MAX;
  }
  const keep = () => sessionStorage.setItem(draftKey(cb.id), JSON.stringify({
    outcome: outcome.value, retry_at: retryAt.value, notes: notes.value, improvements: ideas(),
  }));
  form.addEventListener('input', keep);
  form.addEventListener('change', keep);
  form.addEventListener('click', (event) => { if (event.target.type === 'button') keep(); });
  return form;
}

async function saveOutcome(cb, outcome, retryAt, notes, improvements) {
  const body = { outcome: outcome.value };
  if (notes.value.trim()) body.notes = notes.value.trim();
  if (outcome.value === 'call_later' && retryAt.value) body.retry_at = rfc3339(new Date(retryAt.value));
  // The rows sent, in the order sent: a 400 names one by its place ("improvements.2.text").
  const rows = [...improvements.querySelectorAll('.improvement')]
    .filter((row) => row.querySelector('[name=text]').value.trim());
  const ideas = rows.map((row) => ({ area: row.querySelector('[name=area]').value, text: row.querySelector('[name=text]').value.trim() }));
  if (ideas.length) body.improvements = ideas;
  try {
    const result = await api('POST', `v1/callbacks/${cb.id}/complete`, body);
    sessionStorage.removeItem(draftKey(cb.id));
    notify(`Saved: the callback is ${result.data.status} now.`, 'info');
    route();
    return true;
  } catch (err) {
    if (err.status === 400) {
      const idea = /^improvements\.(\d+)\.(area|text)$/.exec(err.field || '');
      const row = idea ? rows[Number(idea[1])] : null;
      markInvalid(outcome.form, err.field, row ? row.querySelector(`[name=${idea[2]}]`) : null);
    }
    return leaseLost(err);
  }
}

// A 409 on a held call: the lease is gone (it ran out, or a manager cancelled). Says so and
// shows the call as it is now; true then, as the view moves on. Any other error: false.
function leaseLost(err) {
  if (err.status === 409) {
    notify(`This call is no longer yours (${err.message}): it ran out or was taken back.`, 'error');
    route(true);
    return true;
  }
  failed(err);
  return false;
}

function callbackActions(cb, mine) {
  const act = (label, id, path, done) => h('button', {
    type: 'button', id, onclick: (event) => busy(event.currentTarget, async () => {
      const holder = cb.claimed_by_key_id === me.key_id ? 'You hold' : `${cb.claimed_by} holds`;
      const held = cb.status === 'claimed' && cb.claimed_by ? ` ${holder} it now: the call ends unsaved.` : '';
      if (id === 'cancel' && !window.confirm(`Cancel this callback? Nobody will call the customer.${held}`)) return false;
      try {
        await api('POST', `v1/callbacks/${cb.id}/${path}`);
      } catch (err) {
        if (id === 'release') return leaseLost(err);
        failed(err);
        if (err.status === 409) route(true); // closed meanwhile: show it as it is now
        return err.status === 409;
      }
      if (id === 'release') go('#/calls', done);
      else {
        notify(done, 'info');
        route();
      }
      return true;
    }),
  }, label);
  const open = cb.status === 'queued' || cb.status === 'claimed';
  return h('div', { class: 'actions' },
    mine ? act('Release to the queue', 'release', 'release', 'Released: the callback is back in the queue.') : null,
    open && may.cancel() ? act('Cancel callback', 'cancel', 'cancel', 'Cancelled.') : null);
}

// Whether this key holds the claimed callback: a heartbeat tells, and renews the lease.
// Returns the new lease end, or null when the call is someone else's. A 429 is waited out
// on the page's timer: the page is opening, and a tab's timers are slowed to once a minute
// only after minutes in the background.
async function holdsLease(cb) {
  try {
    return (await api('POST', `v1/callbacks/${cb.id}/heartbeat`)).data.lease_expires_at;
  } catch (err) {
    if (err.status === 403 || err.status === 409) return null;
    throw err;
  }
}

// A timer for the lease's renewals: after(ms, fn) calls fn once ms have passed, replacing
// the one set before; wait(ms) is after() as a promise, for api() to wait out a renewal's
// 429 with; stop() ends it, a wait too (which then never resolves: its view is gone).
// Chromium slows the timers of a tab in the background to once a minute (after five
// minutes hidden), too seldom for a lease of a minute, but not a dedicated worker's: so
// the waiting is done in one (lease-timer.js), and on the page only where there is no
// worker (none in the browser, or the CSP or a proxy kept it out).
function leaseTimer() {
  let worker = null;
  let timer = null;
  let pending = null; // {beat, ms, fn}: the one set last, set again on the page if the worker fails
  let beats = 0;
  const fire = () => {
    const { fn } = pending;
    pending = null;
    fn();
  };
  const onPage = () => {
    if (worker) worker.terminate();
    worker = null;
    if (pending) timer = setTimeout(fire, pending.ms);
  };
  if (typeof Worker === 'function') {
    try {
      worker = new Worker('lease-timer.js');
      worker.addEventListener('message', (event) => {
        if (pending && event.data === pending.beat) fire(); // else a timer replaced since
      });
      worker.addEventListener('error', onPage);
    } catch (e) {
      worker = null;
    }
  }
  const after = (ms, fn) => {
    clearTimeout(timer);
    beats += 1;
    pending = { beat: beats, ms, fn };
    if (worker) worker.postMessage({ beat: beats, after: ms });
    else timer = setTimeout(fire, ms);
  };
  return {
    after,
    wait: (ms) => new Promise((resolve) => { after(ms, resolve); }),
    stop: () => {
      clearTimeout(timer);
      pending = null;
      if (worker) worker.terminate();
      worker = null;
    },
  };
}

// Renews the lease while the page is open, at a third of what is left of it. A lease that
// is gone (409), or a key that may no longer (401, 403, 404), ends it; anything else (the
// network, a busy server) is tried again soon, as losing the lease mid-call costs more.
// The lease is also renewed at once when the tab goes to the background (a whole lease to
// last there) and when it comes back to the front (where the timer is the page's, it may
// not have fired for minutes), and a lease that ran out meanwhile is said to have gone
// that way.
function keepLease(cb, expires, view) {
  const timer = leaseTimer();
  let failing = false;
  const schedule = (until, wait) => {
    const left = Date.parse(until) - (Date.now() + skewMs);
    timer.after(wait || Math.min(Math.max(left / 3, HEARTBEAT_MIN_MS), HEARTBEAT_MAX_MS), beat);
  };
  let beating = false;
  // Whether the tab was in the background since the last renewal.
  let background = document.hidden;
  const beat = async () => {
    if (beating) return; // one renewal at a time: the one in flight schedules the next
    beating = true;
    // By npsd's clock, as the lease is: past it, npsd may have given the call to another.
    const ranOut = background && Date.parse(expires) <= Date.now() + skewMs;
    try {
      // A 429's wait is the worker's too, else a hidden tab's renewal could be a minute late.
      // It replaces a renewal set before (this beat came early, on a visibility change): the
      // beat in flight sets the next one itself.
      const renewed = await api('POST', `v1/callbacks/${cb.id}/heartbeat`, undefined, { wait: timer.wait });
      if (view !== generation) return;
      background = document.hidden;
      if (failing) notify('The lease is renewed again.', 'info');
      failing = false;
      expires = renewed.data.lease_expires_at;
      const until = document.getElementById('lease-until');
      if (until) until.textContent = when(expires);
      schedule(expires);
    } catch (err) {
      if (view !== generation) return;
      if (err.status === 409 && ranOut) {
        notify('The lease on this call ran out while its tab was in the background, and the call went back to the '
          + `queue (${err.message}): keep the call's tab in front while you are on it.`, 'error');
        route(true);
      } else if (err.status === 409) {
        leaseLost(err);
      } else if ([401, 403, 404].includes(err.status)) {
        failed(err);
      } else {
        failing = true;
        notify(`The lease could not be renewed (${err.message}); trying again.`, 'error');
        schedule(expires, HEARTBEAT_MIN_MS);
      }
    } finally {
      beating = false;
    }
  };
  const shown = () => {
    if (document.hidden) background = true;
    beat();
  };
  document.addEventListener('visibilitychange', shown);
  schedule(expires);
  leaving.push(() => {
    timer.stop();
    document.removeEventListener('visibilitychange', shown);
  });
}

// "Call next customer" on a call's page: for the touchpoint the agent asked for last.
function nextCallButton() {
  const touchpoint = sessionStorage.getItem(CLAIM_TOUCHPOINT_KEY) || '';
  return h('p', {}, h('button', {
    type: 'button', id: 'next-call', onclick: (event) => busy(event.currentTarget, () => takeNextCall(touchpoint)),
  }, touchpoint ? `Call next customer (${touchpoint})` : 'Call next customer'));
}

// A callback's answers as the agent reads them on the phone: the latest first, as the
// history below and the Answers page are. The latest is what the customer has in mind and
// what put them at the top of the queue last (a lower score joining the call); the API
// lists them oldest first.
function newestFirst(surveys) {
  return [...surveys].sort((a, b) => Date.parse(b.answered_at) - Date.parse(a.answered_at) || b.id - a.id);
}

async function showCallback(id, view) {
  const { data: cb } = await api('GET', `v1/callbacks/${id}`);
  // Only a call claimed by this key is probed (the heartbeat renews the lease and tells its
  // end); between the read and the probe the lease may have run out.
  const ours = cb.status === 'claimed' && may.claim() && cb.claimed_by_key_id === me.key_id;
  const lease = ours ? await holdsLease(cb) : null;
  if (view !== generation) return;
  if (ours && !lease) notify('This call is no longer yours: its lease ran out or it was taken back.', 'error');
  // Names are not unique: a key that replaced the agent's old one sees the old one's call.
  if (cb.status === 'claimed' && !ours && may.claim() && cb.claimed_by === me.name) {
    notify(`Another key also named ${me.name} holds this call: only that key can record it.`, 'info');
  }
  if (lease) cb.lease_expires_at = lease;
  const customer = cb.customer || {};
  const contact = h('dl', { class: 'facts', id: 'customer' },
    h('dt', {}, 'Customer'), h('dd', { id: 'customer-name', dir: 'auto' }, customer.name || customer.id),
    h('dt', {}, 'Phone'), h('dd', {}, customer.phone ? h('a', { href: `tel:${customer.phone}`, id: 'phone' }, customer.phone) : '—'),
    customer.email ? [h('dt', {}, 'Email'), h('dd', {}, customer.email)] : null,
    customer.language ? [h('dt', {}, 'Language'), h('dd', {}, customer.language)] : null,
    customer.do_not_call ? [h('dt', {}, 'Note'), h('dd', { class: 'late' }, 'Do not call')] : null);
  const facts = h('dl', { class: 'facts' },
    h('dt', {}, 'Status'), h('dd', { id: 'status' }, cb.status),
    h('dt', {}, 'Due'), h('dd', {}, when(cb.due_at)),
    h('dt', {}, 'SLA deadline'), h('dd', { class: cb.sla_breached ? 'late' : '' }, when(cb.sla_deadline)),
    // What the API counts as attempts: no answer, busy, voicemail, wrong number (a reached call shows 0).
    h('dt', {}, 'Unanswered tries'), h('dd', { id: 'attempts' }, `${cb.attempts} of ${cb.max_attempts}`),
    cb.claimed_by ? [h('dt', {}, 'Agent'), h('dd', { dir: 'auto' }, cb.claimed_by)] : null,
    cb.lease_expires_at ? [h('dt', {}, 'Lease until'), h('dd', { id: 'lease-until' }, when(cb.lease_expires_at))] : null,
    cb.outcome ? [h('dt', {}, 'Outcome'), h('dd', { id: 'outcome-done' }, outcomeLabel(cb.outcome))] : null,
    cb.notes ? [h('dt', {}, 'Notes'), h('dd', { class: 'text', dir: 'auto' }, cb.notes)] : null);
  const learned = cb.improvements && cb.improvements.length
    ? h('section', { class: 'card' }, h('h2', {}, 'Improvements recorded'),
      h('ul', { id: 'recorded' }, cb.improvements.map((i) => h('li', {}, h('strong', {}, i.area), ': ', h('span', { dir: 'auto' }, i.text)))))
    : null;
  render(
    h('h1', {}, `Callback #${cb.id}`),
    h('div', { class: 'columns' },
      h('section', { class: 'card' }, h('h2', {}, 'Who to call'), contact, facts, callbackActions(cb, Boolean(lease))),
      h('section', { class: 'card' }, h('h2', {}, 'What they told us'), h('ul', { class: 'surveys', id: 'surveys' }, newestFirst(cb.surveys).map(surveyItem)))),
    lease ? completeForm(cb) : draftCard(cb),
    !lease && may.claim() && cb.status !== 'claimed'
      ? nextCallButton()
      : null,
    learned,
    h('section', { class: 'card' }, h('h2', {}, 'Earlier answers and calls'),
      cb.history.length ? h('ul', { id: 'history' }, cb.history.map(historyItem)) : h('p', { class: 'empty' }, 'None.')));
  if (lease) keepLease(cb, lease, view);
}

// ---------- reports ----------

// The period after key, in the API's key forms (a day 2026-12-07, an ISO week 2026-W49, a
// month 2026-12), by calendar arithmetic on the key alone; null for another form.
function nextPeriod(key) {
  const day = 86400 * 1000;
  let m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(key);
  if (m) return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3] + 1)).toISOString().slice(0, 10);
  m = /^(\d{4})-W(\d{2})$/.exec(key);
  if (m) {
    // January 4th is in week 1; a week's Thursday is in the week's year.
    const jan4 = Date.UTC(+m[1], 0, 4);
    const thursday = new Date(jan4 + ((+m[2] - 1) * 7 + 4 - (new Date(jan4).getUTCDay() || 7) + 7) * day);
    const year = thursday.getUTCFullYear();
    const week = Math.floor((thursday - Date.UTC(year, 0, 1)) / (7 * day)) + 1;
    return `${year}-W${String(week).padStart(2, '0')}`;
  }
  m = /^(\d{4})-(\d{2})$/.exec(key);
  if (m) return new Date(Date.UTC(+m[1], +m[2], 1)).toISOString().slice(0, 7);
  return null;
}

// The periods from the first group to the last, those without answers included (the API
// lists only periods with answers), so that the bars stand where their periods are.
function everyPeriod(groups) {
  const slots = [];
  for (const g of groups) {
    for (let key = slots.length ? nextPeriod(slots[slots.length - 1].group) : null;
      key && key < g.group && slots.length < 1000; key = nextPeriod(key)) {
      slots.push({ group: key, nps: null, responses: 0 });
    }
    slots.push(g);
  }
  return slots;
}

function trendChart(groups) {
  const width = 640;
  const height = 200;
  const left = 34; // the scale's labels
  const bottom = 16; // the first and last period's
  const plot = height - bottom;
  const zero = plot / 2;
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', class: 'chart', id: 'trend-chart' });
  const title = svg('title', {});
  title.textContent = 'NPS per period, from -100 to 100 (the table below has every figure)';
  const label = (text, attrs) => {
    const el = svg('text', attrs);
    el.textContent = text;
    return el;
  };
  chart.append(title,
    svg('line', { x1: left, y1: zero, x2: width, y2: zero, class: 'axis' }),
    label('+100', { x: left - 4, y: 10, class: 'scale' }),
    label('0', { x: left - 4, y: zero + 4, class: 'scale' }),
    label('-100', { x: left - 4, y: plot - 2, class: 'scale' }));
  const slots = everyPeriod(groups);
  const step = (width - left) / Math.max(slots.length, 1);
  slots.forEach((g, i) => {
    if (!g.responses) return; // a period without answers: its place stays empty
    const value = g.nps === null ? 0 : g.nps;
    const barHeight = Math.abs(value) / 100 * (zero - 4);
    const bar = svg('rect', {
      x: left + i * step + step * 0.15, width: step * 0.7, height: Math.max(barHeight, 1),
      y: value >= 0 ? zero - barHeight : zero,
      class: value >= 0 ? 'up' : 'down', 'data-period': g.group,
    });
    const tip = svg('title', {});
    tip.textContent = `${g.group}: NPS ${figure(g.nps)} from ${g.responses} answers`;
    bar.append(tip);
    chart.append(bar);
  });
  chart.append(label(slots[0].group, { x: left, y: height - 2, class: 'period' }));
  if (slots.length > 1) chart.append(label(slots[slots.length - 1].group, { x: width, y: height - 2, class: 'period last' }));
  return chart;
}

function npsTable(id, label, key, groups) {
  return h('div', { class: 'wide' }, h('table', { id },
    h('thead', {}, h('tr', {}, [label, 'NPS', '± (95%)', 'Answers', 'Promoters', 'Passives', 'Detractors'].map((t) => h('th', {}, t)))),
    h('tbody', {}, groups.map((g) => h('tr', {},
      h('td', {}, g[key]), h('td', { class: 'num' }, figure(g.nps)), h('td', { class: 'num' }, figure(g.margin_of_error)),
      h('td', { class: 'num' }, g.responses), h('td', { class: 'num' }, g.promoters),
      h('td', { class: 'num' }, g.passives), h('td', { class: 'num' }, g.detractors))))));
}

// What was recorded per touchpoint and area, the touchpoint with the most first: which
// touchpoint's process, communication or service needs fixing. Nothing when none was.
function improvementCounts(counts) {
  const touchpoints = Object.entries(counts.by_touchpoint).sort(([a, m], [b, n]) => n - m || a.localeCompare(b));
  if (!touchpoints.length) return null;
  const count = {};
  for (const { area, touchpoint, count: n } of counts.by_area_and_touchpoint) count[`${touchpoint} ${area}`] = n;
  return h('div', { class: 'wide' }, h('table', { id: 'improvements-by-touchpoint' },
    h('thead', {}, h('tr', {}, ['Touchpoint', 'All', ...AREAS].map((t) => h('th', {}, t)))),
    h('tbody', {}, touchpoints.map(([touchpoint, total]) => h('tr', {},
      h('td', {}, touchpoint), h('td', { class: 'num' }, total),
      AREAS.map((area) => h('td', { class: 'num' }, count[`${touchpoint} ${area}`] || 0)))))));
}

// The view that asks the reports again after a refusal (429, 503): refused a second time,
// the page says so and waits for its user.
let reportsRetry = 0;

async function showReports(params, view) {
  const days = PERIODS.some(([d]) => String(d) === params.get('days')) ? Number(params.get('days')) : 30;
  const [, , groupBy] = PERIODS.find(([d]) => d === days);
  // The trend and the improvements of one touchpoint, or of all.
  const touchpoint = isTouchpoint(params.get('touchpoint') || '') ? params.get('touchpoint') : '';
  // No `to`: up to now, answers of this very second included.
  const range = { from: rfc3339(new Date(Date.now() - days * 86400 * 1000)) };
  const retried = reportsRetry === view;
  // The three wait their turns on npsd's long-report queue. Those a page no longer wants (it
  // went elsewhere, or one of them was refused) are dropped: npsd skips a report whose client
  // has gone, where it would run it for nobody and keep others waiting behind it.
  const reading = new AbortController();
  leaving.push(() => reading.abort());
  const read = (path) => api('GET', path, undefined, { signal: reading.signal, ownWait: true });
  let results;
  try {
    results = await Promise.all([
      read(`v1/nps${query({ ...range, group_by: 'touchpoint' })}`),
      read(`v1/nps${query({ ...range, touchpoint, group_by: groupBy })}`),
      read(`v1/improvements${query({ ...range, touchpoint, limit: 50 })}`),
    ]);
  } catch (err) {
    reading.abort();
    if (view !== generation) return;
    if (err.status === 403) {
      render(h('h1', {}, 'Reports'), h('p', { class: 'card' }, 'Reports are for managers: this key may not read them.'));
      return;
    }
    // npsd is busy (503) or this key has many reports waiting (429): the page says when it
    // asks again and does so once, all three together, after the Retry-After. Refused again,
    // it offers Try again rather than adding to a queue that is not getting shorter.
    const refused = (err.status === 429 || err.status === 503) && err.retryAfter;
    if (!refused || retried) throw err;
    const at = new Date(Date.now() + err.retryAfter * 1000).toLocaleTimeString();
    render(h('h1', {}, 'Reports'));
    notify(`The reports cannot be read now (${err.message}). This page asks again in ${err.retryAfter} s, at ${at}.`, 'error');
    const again = setTimeout(() => {
      reportsRetry = generation + 1; // the view route() is about to draw
      route();
    }, err.retryAfter * 1000);
    leaving.push(() => clearTimeout(again));
    return;
  }
  if (view !== generation) return;
  const [byTouchpoint, trend, improvements] = results.map((r) => r.data);

  const period = h('select', { id: 'period', name: 'days' },
    PERIODS.map(([d, label]) => h('option', { value: d, selected: d === days }, label)));
  const names = byTouchpoint.groups.map((g) => g.touchpoint);
  if (touchpoint && !names.includes(touchpoint)) names.push(touchpoint);
  const only = h('select', { id: 'report-touchpoint', name: 'touchpoint' },
    h('option', { value: '' }, 'every touchpoint'),
    names.map((name) => h('option', { value: name, selected: name === touchpoint }, name)));
  const choose = () => { location.hash = `#/reports${query({ days: period.value, touchpoint: only.value })}`; };
  period.addEventListener('change', choose);
  only.addEventListener('change', choose);
  const of = touchpoint ? ` of ${touchpoint}` : '';

  const counts = improvements.counts;
  render(
    h('h1', {}, 'Reports'),
    h('div', { class: 'filter' },
      h('label', { for: 'period' }, 'Period'), period,
      h('label', { for: 'report-touchpoint' }, 'Trend and improvements of'), only),
    h('section', { class: 'card' },
      h('h2', {}, 'Net Promoter Score'),
      byTouchpoint.responses ? null : h('p', { class: 'empty' }, 'No answers in this period.'),
      !byTouchpoint.responses ? null : h('p', { class: 'headline' },
        h('span', { id: 'nps' }, figure(byTouchpoint.nps)),
        ` ± ${figure(byTouchpoint.margin_of_error)} from `, h('span', { id: 'responses' }, byTouchpoint.responses), ' answers',
        byTouchpoint.excluded ? ` (${byTouchpoint.excluded} left out)` : ''),
      npsTable('by-touchpoint', 'Touchpoint', 'touchpoint', byTouchpoint.groups)),
    h('section', { class: 'card' },
      h('h2', {}, `Trend${of} per ${groupBy} (${trend.timezone})`),
      trend.responses ? trendChart(trend.groups) : h('p', { class: 'empty' }, `No answers${of} in this period.`),
      trend.responses ? npsTable('trend', groupBy[0].toUpperCase() + groupBy.slice(1), groupBy, trend.groups) : null),
    h('section', { class: 'card' },
      h('h2', {}, `What to improve${of} (${counts.total} recorded)`),
      h('ul', { class: 'counts', id: 'by-area' },
        Object.entries(counts.by_area).map(([area, n]) => h('li', {}, h('strong', {}, n), ` ${area}`))),
      improvementCounts(counts),
      improvements.improvements.length
        ? h('div', { class: 'wide' }, h('table', { id: 'improvement-list' },
          h('thead', {}, h('tr', {}, ['When', 'Area', 'Touchpoint', 'What', 'Callback'].map((t) => h('th', {}, t)))),
          h('tbody', {}, improvements.improvements.map((i) => h('tr', {},
            h('td', {}, when(i.created_at)), h('td', {}, i.area), h('td', {}, i.touchpoint || ''), h('td', { dir: 'auto' }, clamped(i.text)),
            h('td', {}, h('a', { href: `#/callbacks/${i.callback_id}` }, `#${i.callback_id}`)))))))
        : h('p', { class: 'empty' }, 'Nothing recorded in this period.'),
      improvements.next_cursor ? h('p', { class: 'more' }, 'The 50 newest are shown; the counts are of them all.') : null));
}

// ---------- answers ----------

const ANSWERS_SHOWN = 20;
// The filters GET /v1/surveys takes. The page's address carries them as the API does, each
// as given (an empty one too): a value the API refuses is shown with its message, never
// dropped for a quietly unfiltered list.
const ANSWER_FILTERS = ['touchpoint', 'channel', 'customer_id', 'min_score', 'max_score', 'from', 'to'];

// One answer as a manager reads it: all of them, not only those that opened a callback.
function answerItem(s, redraw) {
  const customer = s.customer ? s.customer.id : '';
  return h('li', { class: 'survey', id: `answer-${s.id}` },
    h('span', { class: `score ${s.category}` }, s.score),
    h('div', { class: 'answer-text' },
      h('div', {}, h('strong', { class: 'touchpoint' }, s.touchpoint), s.channel ? [' via ', h('span', { class: 'channel' }, s.channel)] : null,
        ` · ${s.category} · `, h('time', { datetime: s.answered_at }, when(s.answered_at))),
      h('div', { class: 'who' }, 'Customer ', h('bdi', { class: 'customer-id' }, customer),
        s.callback
          ? [' · ', h('a', { class: 'callback', href: `#/callbacks/${s.callback.id}` }, `callback #${s.callback.id}`), ` (${s.callback.status})`]
          : ' · no callback'),
      s.comment ? h('blockquote', { class: 'comment', dir: 'auto' }, s.comment) : h('p', { class: 'empty' }, 'No comment.'),
      exclusion(s, redraw)));
}

// The filters as a form. Nothing is checked here but what the inputs cannot hold: the API
// judges the values, and its 400 names and marks the one it refused.
function answersFilter(params) {
  const text = (id, field) => h('input', { id, name: field, 'data-field': field, value: params.get(field), placeholder: 'any' });
  const touchpoint = text('answers-touchpoint', 'touchpoint');
  const channel = text('answers-channel', 'channel');
  const customer = text('answers-customer', 'customer_id');
  // A bound on the score as a choice of the values that narrow, the categories named;
  // promoters only is a lowest score of 9, the passives 7 to 8.
  const bound = (id, field, numbers, word, named) => {
    const chosen = params.get(field) || '';
    const scores = [['', 'any']];
    for (const n of numbers) scores.push([String(n), `${n} or ${word}${named[n] ? `: ${named[n]}` : ''}`]);
    // One the address holds and the list does not (10, or one the API refuses): as it is.
    if (!scores.some(([value]) => value === chosen)) scores.push([chosen, `${chosen} or ${word}`]);
    return h('select', { id, name: field, 'data-field': field },
      scores.map(([value, label]) => h('option', { value, selected: value === chosen }, label)));
  };
  const minScore = bound('answers-min-score', 'min_score', [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'higher',
    { 7: 'passives and promoters', 9: 'promoters' });
  const maxScore = bound('answers-max-score', 'max_score', [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'lower',
    { 6: 'detractors', 8: 'detractors and passives' });
  const time = (id, field) => {
    const ms = Date.parse(params.get(field) || '');
    return h('input', { id, name: field, 'data-field': field, type: 'datetime-local', step: 1, value: Number.isNaN(ms) ? null : localInput(ms, 19) });
  };
  const from = time('answers-from', 'from');
  const to = time('answers-to', 'to');
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const form = h('form', { id: 'answers-filter', class: 'card' },
    h('div', { class: 'filter' },
      h('label', { for: 'answers-touchpoint' }, 'Touchpoint'), touchpoint,
      h('label', { for: 'answers-channel' }, 'Channel'), channel,
      h('label', { for: 'answers-customer' }, 'Customer id'), customer),
    h('div', { class: 'filter' },
      h('label', { for: 'answers-min-score' }, 'Lowest score'), minScore,
      h('label', { for: 'answers-max-score' }, 'Highest score'), maxScore),
    h('div', { class: 'filter' },
      h('label', { for: 'answers-from' }, 'Answered from'), from,
      h('label', { for: 'answers-to' }, 'and before'), to),
    h('p', { class: 'more' }, `Times are yours (${zone}).`),
    h('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    // A half-typed date reads as empty: that would be no bound at all, not the one meant.
    const partial = [from, to].find((input) => !input.validity.valid);
    if (partial) {
      notify(`Give a whole date and time, or leave it empty (${partial.name}).`, 'error');
      markInvalid(form, partial.name);
      return;
    }
    const hash = `#/answers${query({
      touchpoint: touchpoint.value.trim(),
      channel: channel.value.trim(),
      customer_id: customer.value.trim(),
      min_score: minScore.value,
      max_score: maxScore.value,
      from: from.value ? rfc3339(new Date(from.value)) : '',
      to: to.value ? rfc3339(new Date(to.value)) : '',
    })}`;
    notify('');
    if (hash === location.hash) route();
    else location.hash = hash;
  });
  return form;
}

async function showAnswers(params, view) {
  // The page's filters, and a page of them: the API's cursor, as its next_cursor gave it.
  const listQuery = (cursor) => {
    const q = new URLSearchParams();
    for (const name of ANSWER_FILTERS) if (params.has(name)) q.set(name, params.get(name));
    q.set('limit', ANSWERS_SHOWN);
    if (cursor) q.set('cursor', cursor);
    return `v1/surveys?${q}`;
  };
  const form = answersFilter(params);
  let first;
  try {
    first = (await api('GET', listQuery(null))).data;
  } catch (err) {
    if (view !== generation) return;
    if (err.status === 403) {
      render(h('h1', {}, 'Answers'), h('p', { class: 'card' }, 'Answers are for managers: this key may not read them.'));
      return;
    }
    if (err.status !== 400) throw err;
    render(h('h1', {}, 'Answers'), form, h('p', {}, h('a', { id: 'unfiltered', href: '#/answers' }, 'Show every answer')));
    failed(err);
    markInvalid(form, err.field);
    return;
  }
  if (view !== generation) return;

  // Redrawn in place, a page at a time, so a change to an answer keeps its page.
  const card = h('section', { class: 'card', id: 'answers-card' });
  const reload = async () => {
    const { data } = await api('GET', listQuery(pages.cursor()));
    if (view === generation) draw(data.surveys, data.next_cursor);
  };
  const pages = pager(reload);
  // After an answer was left out or counted again: this page as it is now, and the keys'
  // focus back on that answer's button, as the one pressed went with the redrawing.
  const redrawn = (id) => async () => {
    try {
      await reload();
    } catch (err) {
      failed(err);
      return false;
    }
    const again = card.querySelector(`#answer-${id} .exclusion > button`);
    if (again) again.focus();
    return true;
  };
  const empty = (next) => {
    if (!pages.cursors.length && !next) return 'No answers.';
    // A page stops after looking through many answers that the filters pass by.
    return next ? 'None among the answers looked through: the older ones are still to look at.' : 'No older answers.';
  };
  const draw = (surveys, next) => card.replaceChildren(...[
    h('h2', {}, pages.cursors.length ? `Older answers (page ${pages.cursors.length + 1})` : 'Newest answers'),
    surveys.length
      ? h('ul', { class: 'surveys', id: 'answers' }, surveys.map((s) => answerItem(s, redrawn(s.id))))
      : h('p', { class: 'empty', id: 'answers' }, empty(next)),
    h('div', { class: 'actions' }, ...pages.buttons('answers', ANSWERS_SHOWN, next)),
  ].filter(present));
  draw(first.surveys, first.next_cursor);
  render(h('h1', {}, 'Answers'), form, card);
}

// ---------- webhooks ----------

// The event types of SPEC a webhook subscribes to. Not offered: webhook.test, which only
// the test call sends, and webhook.disabled, which goes to every active webhook anyway.
const EVENTS = [
  ['survey.received', 'every answer, good or bad'],
  ['survey.updated', 'an answer completed later (a comment added)'],
  ['callback.created', 'a customer put in the callback queue'],
  ['callback.completed', 'a call recorded, with its outcome and improvements'],
  ['callback.sla_breached', 'a callback not made in time'],
  ['callback.unreachable', 'a customer who could not be reached'],
  ['loop.silent', 'no answers coming in during opening hours'],
  ['loop.nps_drop', 'a touchpoint whose NPS falls'],
];
const FORMATS = [
  ['standard', 'standard: signed JSON (Standard Webhooks)'],
  ['ntfy', 'ntfy: a push to a phone'],
  ['slack', 'slack: Slack, Mattermost, Rocket.Chat'],
];
const DELIVERIES_SHOWN = 20;
// After a test or a retry the page follows that delivery this often, this many times,
// and then tells how it went (a first attempt may take webhooks.timeout, 10 s by default).
const DELIVERY_WATCH_MS = 1000;
const DELIVERY_WATCH_TRIES = 30;

// The secret of the webhook just created, {id, secret}: the API shows it once, so it is
// kept in memory while that webhook's page is open (a test or a switch redraws the page),
// never stored, and forgotten as soon as the user goes to another page.
let freshSecret = null;

function webhookSends(w) {
  const parts = [];
  if (w.digest === 'daily') parts.push(`daily digest at ${w.digest_at}`);
  else if (w.digest === 'hourly') parts.push(`hourly digest at :${w.digest_at.slice(3)}`);
  if (w.events.length) parts.push(w.events.join(', '));
  return parts.join('; ');
}

function webhookFilter(filter) {
  const parts = [];
  if (present(filter.min_score)) parts.push(`score ≥ ${filter.min_score}`);
  if (present(filter.max_score)) parts.push(`score ≤ ${filter.max_score}`);
  if (filter.touchpoints) parts.push(`touchpoints ${filter.touchpoints.join(', ')}`);
  return parts.length ? parts.join(', ') : 'none';
}

function webhookState(w) {
  if (w.active) return 'active';
  return w.disabled_reason ? `disabled: ${w.disabled_reason}` : 'switched off';
}

// The pages are the API's: a key of another role gets a 403 and is told so.
function managersOnly(err, view) {
  if (err.status !== 403) throw err;
  if (view !== generation) return;
  render(h('h1', {}, 'Webhooks'), h('p', { class: 'card' }, 'Webhooks are for managers: this key may not manage them.'));
}

function webhookRow(w) {
  return h('tr', {},
    h('td', {}, h('a', { href: `#/webhooks/${w.id}` }, `#${w.id}`)),
    h('td', { class: 'url' }, clamped(w.url)),
    h('td', {}, w.format),
    h('td', {}, webhookSends(w)),
    h('td', {}, webhookFilter(w.filter)),
    h('td', { dir: 'auto' }, clamped(w.description || '')),
    h('td', { class: w.active ? '' : 'late' }, webhookState(w)),
    h('td', { class: w.failing_since ? 'late' : '' }, w.failing_since ? when(w.failing_since) : '—'));
}

// Marks the input a 400 named (field "url", "events.2", "filter.max_score", by its
// data-field; or the one found for it) and takes the focus there; the notice says what is
// wrong with it.
function markInvalid(form, field, found = null) {
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  const name = (field || '').startsWith('filter.') ? field : (field || '').split('.')[0];
  const el = found || (name ? form.querySelector(`[data-field="${name}"]:not(:disabled)`) : null);
  if (!el) return;
  el.setAttribute('aria-invalid', 'true');
  (el.matches('fieldset') ? el.querySelector('input') : el).focus();
}

// The inputs of a webhook, empty to add one or holding w's settings to edit it, and what
// they say as the API's fields (every one of them: an edit sends only those that differ).
function webhookFields(w = null) {
  const input = (id, field, attrs = {}) => h('input', { id, name: field, 'data-field': field, ...attrs });
  // No maxlength on these: it would cut a pasted value without a word (a wrong URL, a broken
  // header) and counts UTF-16 units, not the API's characters. The API judges the length.
  const url = input('wh-url', 'url', { type: 'url', required: true, placeholder: 'https://ntfy.sh/nps-claims-7f3k2', value: w ? w.url : null });
  const format = h('select', { id: 'wh-format', name: 'format', 'data-field': 'format' },
    FORMATS.map(([value, label]) => h('option', { value, selected: Boolean(w) && w.format === value }, label)));
  // A type the webhook has and the list does not offer (webhook.disabled, by the API) stays
  // a box of its own, so that editing the others does not drop it without a word.
  const offered = EVENTS.concat((w ? w.events : []).filter((type) => !EVENTS.some(([known]) => known === type)).map((type) => [type, '']));
  const events = h('fieldset', { id: 'wh-events', 'data-field': 'events' },
    h('legend', {}, 'Events, each pushed as it happens'),
    offered.map(([type, what]) => h('label', { class: 'check' },
      h('input', { type: 'checkbox', name: 'events', value: type, checked: Boolean(w) && w.events.includes(type) }), h('code', {}, type), ` ${what}`)));
  // A daily digest's time, or an hourly one's minute (the API takes "HH:MM" and uses only
  // the minute of an hourly one's: asking for an hour would drop it without a word). The one
  // not shown is disabled, so that what it holds is neither checked nor sent.
  const digestAt = input('wh-digest-at', 'digest_at', { type: 'time', value: w && w.digest === 'daily' ? w.digest_at : null });
  const digestMinute = input('wh-digest-minute', 'digest_at', {
    type: 'number', min: 0, max: 59, step: 1, class: 'score-input', value: w && w.digest === 'hourly' ? Number(w.digest_at.slice(3)) : null,
  });
  const daily = h('div', {},
    h('label', { for: 'wh-digest-at' }, 'At (the call centre\'s time zone; empty: 08:00)'), digestAt);
  const hourly = h('div', {},
    h('label', { for: 'wh-digest-minute' }, 'At this minute past each hour (0 to 59, in the call centre\'s time zone; empty: on the hour)'), digestMinute);
  const digest = h('select', { id: 'wh-digest', name: 'digest', 'data-field': 'digest' },
    h('option', { value: '' }, 'no digest'),
    h('option', { value: 'hourly', selected: Boolean(w) && w.digest === 'hourly' }, 'hourly'),
    h('option', { value: 'daily', selected: Boolean(w) && w.digest === 'daily' }, 'daily'));
  const showDigest = () => {
    daily.hidden = digest.value !== 'daily';
    hourly.hidden = digest.value !== 'hourly';
    digestAt.disabled = daily.hidden;
    digestMinute.disabled = hourly.hidden;
  };
  digest.addEventListener('change', showDigest);
  showDigest();
  const filterOf = (w && w.filter) || {};
  const score = (id, field, value) => input(id, field, { type: 'number', min: 0, max: 10, step: 1, class: 'score-input', value });
  const minScore = score('wh-min-score', 'filter.min_score', filterOf.min_score);
  const maxScore = score('wh-max-score', 'filter.max_score', filterOf.max_score);
  const touchpoints = input('wh-touchpoints', 'filter.touchpoints', {
    pattern: `\\s*${TOUCHPOINT}(\\s*,\\s*${TOUCHPOINT})*\\s*`, placeholder: 'every touchpoint (or: claim, renewal)',
    value: filterOf.touchpoints ? filterOf.touchpoints.join(', ') : null,
  });
  // Sent to the receiver as its Authorization header; npsd never shows it again, so an edit
  // offers to replace it or to remove it, never to read it.
  const auth = input('wh-auth', 'auth', {
    type: 'password', autocomplete: 'off', placeholder: w && w.auth_set ? 'set: leave empty to keep it' : 'Bearer tk_…',
  });
  const noAuth = w && w.auth_set ? h('input', { type: 'checkbox', id: 'wh-auth-remove', name: 'auth_remove' }) : null;
  if (noAuth) noAuth.addEventListener('change', () => { auth.disabled = noAuth.checked; });
  const description = input('wh-description', 'description', { placeholder: 'claims team', value: w ? w.description : null });

  const nodes = [
    h('label', { for: 'wh-url' }, 'URL (http or https)'), url,
    h('label', { for: 'wh-format' }, 'Format'), format,
    events,
    h('p', { class: 'more' }, 'A webhook.disabled alert (another webhook switched off after failing) comes to every active webhook.'),
    h('label', { for: 'wh-digest' }, 'Digest: one message per period with the NPS, the lowest scores and the queue (then no events are needed)'), digest,
    daily, hourly,
    h('fieldset', {}, h('legend', {}, 'Filter for answer and callback events (empty: all)'),
      h('div', { class: 'filter' },
        h('label', { for: 'wh-min-score' }, 'Lowest score'), minScore,
        h('label', { for: 'wh-max-score' }, 'Highest score'), maxScore),
      h('label', { for: 'wh-touchpoints' }, 'Touchpoints, separated by commas'), touchpoints),
    h('label', { for: 'wh-auth' }, w && w.auth_set
      ? 'Authorization header the receiver wants (set, never shown: type a new one to replace it)'
      : 'Authorization header the receiver wants (optional; never shown again)'), auth,
    noAuth ? h('label', { class: 'check', for: 'wh-auth-remove' }, noAuth, ' Remove it: send no Authorization header') : null,
    h('label', { for: 'wh-description' }, 'Description (optional)'), description,
  ];
  // Every field as the form says it; digest_at is null for the default (08:00, on the hour).
  const values = () => {
    const filter = {};
    if (minScore.value !== '') filter.min_score = Number(minScore.value);
    if (maxScore.value !== '') filter.max_score = Number(maxScore.value);
    const names = touchpoints.value.split(',').map((name) => name.trim()).filter(Boolean);
    if (names.length) filter.touchpoints = names;
    let at = null;
    if (digest.value === 'daily' && digestAt.value) at = digestAt.value;
    if (digest.value === 'hourly' && digestMinute.value !== '') at = `00:${String(Number(digestMinute.value)).padStart(2, '0')}`;
    return {
      url: url.value.trim(),
      format: format.value,
      events: [...events.querySelectorAll('input:checked')].map((box) => box.value),
      digest: digest.value || null,
      digest_at: at,
      filter,
      auth: noAuth && noAuth.checked ? null : auth.value.trim(),
      description: description.value.trim(),
    };
  };
  return { nodes, values };
}

// What a manager typed in a webhook's form and has not saved, kept in the tab's
// sessionStorage as a call's draft is ('new' for the add form, else the webhook's id): going
// to another page or a reload does not throw it away. Saving, Discard (Cancel, on an edit)
// and "Sign out" forget it. The receiver's Authorization header is not kept: it is a
// credential, and the API never shows it again either; the form asks for it again.
const webhookDraftKey = (which) => `npsd.webhook-draft.${which}`;

function readWebhookDraft(which) {
  try {
    return JSON.parse(sessionStorage.getItem(webhookDraftKey(which)) || 'null');
  } catch (e) {
    return null;
  }
}

function forgetWebhookDraft(which) {
  sessionStorage.removeItem(webhookDraftKey(which));
}

// The form's inputs by id (a checkbox by its name and value), the auth's text left out.
function webhookFormState(form) {
  const state = { values: {}, auth_typed: false };
  for (const el of form.querySelectorAll('input, select, textarea')) {
    if (el.name === 'auth') state.auth_typed = el.value.trim() !== '';
    else if (el.type === 'checkbox') state.values[`${el.name}=${el.value}`] = el.checked;
    else if (el.id) state.values[el.id] = el.value;
  }
  return state;
}

// An input's key in webhookFormState's values.
const inputKey = (el) => (el.type === 'checkbox' ? `${el.name}=${el.value}` : el.id);

// Sets the inputs whose keys pass only to what values holds, the auth's text left out.
function putWebhookValues(form, values, only) {
  for (const el of form.querySelectorAll('input, select, textarea')) {
    const key = inputKey(el);
    if (el.name === 'auth' || !(key in values) || !only(key)) continue;
    if (el.type === 'checkbox') el.checked = values[key];
    else el.value = values[key];
  }
  // What hangs on them: the digest's time fields, the auth field under "Remove it".
  for (const el of form.querySelectorAll('select, input[type=checkbox]')) el.dispatchEvent(new Event('change'));
}

// The API's fields (url, filter, events…) behind the keys whose values differ in a and b.
function webhookFieldsChanged(form, a, b) {
  const names = new Set();
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (a[key] === b[key]) continue;
    const el = key.includes('=') ? null : form.querySelector(`#${key}`);
    const name = el ? el.dataset.field || key : key.split('=')[0];
    names.add(name === 'auth_remove' ? 'auth' : name.split('.')[0]);
  }
  return [...names];
}

// Puts a draft back into form, then keeps what is typed there from now on. A draft keeps
// with it the form as first drawn when it began (its base: what the webhook had then). An
// edit's form drawn from the webhook as read now that is not that base means it was changed
// elsewhere since (another tab, another manager, the API): the draft put back silently
// would write its old values over those changes on save. The form then shows the webhook
// as it is now, says so, and offers the draft, whose changes alone (what differs from its
// base) go back over the new values, or to discard it. Until one is chosen the draft stays
// as it was, for this page opened again to offer it again (unless something typed in the
// form meanwhile began a new draft in its place).
function keepWebhookDraft(form, which) {
  const fresh = webhookFormState(form).values;
  const draft = readWebhookDraft(which);
  let base = fresh;
  const keep = () => sessionStorage.setItem(webhookDraftKey(which), JSON.stringify({ ...webhookFormState(form), base }));
  // A draft kept before drafts had a base is put back whole, as it was then.
  const changedByDraft = (key) => !draft.base || draft.values[key] !== draft.base[key];
  const line = (text, id = 'webhook-draft', ...more) => {
    const old = form.querySelector('.webhook-draft');
    const p = h('p', { class: 'more webhook-draft', id, role: 'status' }, text, ...more);
    if (old) old.replaceWith(p);
    else form.querySelector('h2').after(p);
  };
  const back = (over) => `What you typed and did not save is back${over}`
    + `${draft.auth_typed ? ', but the Authorization header: type it again' : ''}.`;
  const elsewhere = draft && draft.values && draft.base ? webhookFieldsChanged(form, draft.base, fresh) : [];
  if (draft && draft.values && !elsewhere.length) {
    putWebhookValues(form, draft.values, changedByDraft);
    base = draft.base || fresh;
    line(back(''));
  } else if (draft && draft.values) {
    const button = (id, label, onclick) => h('button', { type: 'button', class: 'link', id, onclick }, label);
    const putBack = button('restore-webhook-draft', 'Put back what you changed', () => {
      putWebhookValues(form, draft.values, changedByDraft);
      keep(); // the draft is over the webhook as it is now
      line(back(', over the changes made elsewhere'));
      form.querySelector('#wh-url').focus();
    });
    const discard = button('discard-webhook-draft', 'Discard it', () => {
      forgetWebhookDraft(which);
      line('What you typed is discarded: the form shows the webhook as it is now.');
      form.querySelector('#wh-url').focus();
    });
    line(`Webhook #${which} was changed elsewhere (${elsewhere.join(', ')}) since you began editing it, and `
      + 'what you typed was not saved: the form shows it as it is now. ', 'webhook-draft-stale', putBack, ' ', discard);
  }
  form.addEventListener('input', keep);
  form.addEventListener('change', keep);
}

function webhookForm() {
  const fields = webhookFields();
  const form = h('form', { id: 'webhook-form', class: 'card' },
    h('h2', {}, 'Add a webhook'), fields.nodes,
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, 'Add webhook'),
      h('button', {
        type: 'button', class: 'link', id: 'discard-webhook', onclick: () => {
          forgetWebhookDraft('new');
          form.replaceWith(webhookForm());
          document.getElementById('wh-url').focus();
        },
      }, 'Discard')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const v = fields.values();
    const body = { url: v.url, format: v.format };
    if (v.events.length) body.events = v.events;
    if (v.digest) {
      body.digest = v.digest;
      if (v.digest_at) body.digest_at = v.digest_at;
    }
    if (Object.keys(v.filter).length) body.filter = v.filter;
    if (v.auth) body.auth = v.auth;
    if (v.description) body.description = v.description;
    // What was typed stays in the form until the webhook is created.
    busy(form.querySelector('button[type=submit]'), async () => {
      try {
        const { data } = await api('POST', 'v1/webhooks', body);
        forgetWebhookDraft('new');
        freshSecret = { id: data.id, secret: data.secret };
        go(`#/webhooks/${data.id}`, `Webhook #${data.id} added: it gets what it subscribed to from now on.`);
        return true;
      } catch (err) {
        failed(err);
        if (err.status === 400) markInvalid(form, err.field);
        return false;
      }
    });
  });
  keepWebhookDraft(form, 'new');
  return form;
}

// A filter as one text, its keys in one order: two filters are the same when these are.
const filterText = (f) => JSON.stringify([f.min_score ?? null, f.max_score ?? null, f.touchpoints ?? null]);

// What an edit changes of w: only the fields that differ, each whole (a PATCH replaces what
// it names whole, e.g. the whole filter). The auth is sent only when a new one is typed or
// it is removed, as it is never shown.
function webhookChanges(w, v) {
  const body = {};
  if (v.url !== w.url) body.url = v.url;
  if (v.format !== w.format) body.format = v.format;
  if ([...v.events].sort().join() !== [...w.events].sort().join()) body.events = v.events;
  // The time in force of each kind: an hourly digest uses only the minute of its time.
  const inForce = (digest, at) => {
    if (digest === 'daily') return at || '08:00';
    if (digest === 'hourly') return (at || '00:00').slice(3);
    return null;
  };
  if (v.digest !== w.digest) {
    body.digest = v.digest;
    // Sent with a new kind even when empty (null: the default), or the API would keep the
    // old kind's time (an hourly :05 would become a daily 00:05).
    if (v.digest) body.digest_at = v.digest_at;
  } else if (v.digest && inForce(v.digest, v.digest_at) !== inForce(w.digest, w.digest_at)) {
    body.digest_at = v.digest_at;
  }
  if (filterText(v.filter) !== filterText(w.filter || {})) body.filter = v.filter;
  if (v.auth === null ? w.auth_set : v.auth !== '') body.auth = v.auth;
  if (v.description !== (w.description || '')) body.description = v.description || null;
  return body;
}

async function showWebhooks(view) {
  let list;
  try {
    list = (await api('GET', 'v1/webhooks')).data.webhooks;
  } catch (err) {
    managersOnly(err, view);
    return;
  }
  if (view !== generation) return;
  render(
    h('h1', {}, 'Webhooks'),
    h('section', { class: 'card' },
      h('h2', {}, 'Where alerts go'),
      list.length
        ? h('div', { class: 'wide' }, h('table', { id: 'webhooks' },
          h('thead', {}, h('tr', {}, ['Webhook', 'URL', 'Format', 'Sends', 'Filter', 'Description', 'State', 'Failing since'].map((t) => h('th', {}, t)))),
          h('tbody', {}, list.map(webhookRow))))
        : h('p', { class: 'empty' }, 'None yet: add one below.')),
    webhookForm());
}

function secretCard(secret) {
  const text = h('input', {
    id: 'secret', readonly: true, value: secret, 'aria-describedby': 'secret-note', onfocus: (event) => event.target.select(),
  });
  const copy = async () => {
    text.select();
    try {
      await navigator.clipboard.writeText(secret);
      notify('The secret is copied.', 'info');
    } catch (e) {
      // No clipboard for a page served over plain http from another host.
      notify('The browser did not let the page copy: the secret is selected, press Ctrl+C.', 'info');
    }
  };
  return h('section', { class: 'card secret', id: 'secret-card' },
    h('h2', {}, 'Signing secret'),
    h('p', { id: 'secret-note' }, h('strong', {}, 'Shown only now: '),
      'npsd never shows it again, here or in the API. Copy it to the receiver, which checks the ',
      h('code', {}, 'webhook-signature'), ' header with it (format standard). Once you leave this page it is gone; ',
      'if it is lost, delete the webhook and add it again.'),
    h('label', { for: 'secret' }, 'Secret'), text,
    h('button', { type: 'button', id: 'copy-secret', onclick: copy }, 'Copy'));
}

function attemptItem(a) {
  const answer = present(a.http_status) ? `HTTP ${a.http_status}` : 'no HTTP answer';
  // What the receiver answered (its first 4 KiB) says why it refused: untrusted, so text
  // only, in a box of a few lines that scrolls (and takes the focus, to scroll by keys).
  return h('li', {}, `${when(a.at)}: ${answer} in ${a.duration_ms} ms`,
    a.error && a.error !== answer ? h('span', { class: 'late' }, ` (${a.error})`) : null,
    a.response_head ? h('pre', { class: 'response-head', tabindex: 0, 'aria-label': 'What the receiver answered' }, a.response_head) : null);
}

function deliveryStatus(d) {
  if (d.status === 'pending') return d.next_attempt_at ? `pending, next try ${when(d.next_attempt_at)}` : 'pending';
  return d.status;
}

function deliveriesTable(w, deliveries, retry) {
  if (!deliveries.length) return h('p', { class: 'empty', id: 'deliveries' }, 'Nothing sent yet.');
  return h('div', { class: 'wide', id: 'deliveries' }, h('table', {},
    h('thead', {}, h('tr', {}, ['Delivery', 'Event', 'Status', 'Attempts', 'Created', ''].map((t) => h('th', {}, t)))),
    h('tbody', {}, deliveries.map((d) => h('tr', { id: `delivery-${d.id}` },
      h('td', {}, `#${d.id}`),
      h('td', {}, d.event_type || ''),
      h('td', { class: `status ${d.status === 'failed' ? 'late' : ''}` }, deliveryStatus(d)),
      h('td', {}, d.attempt_log.length
        ? h('ol', { class: 'attempts' }, d.attempt_log.map(attemptItem))
        : h('span', { class: 'empty' }, 'none yet')),
      h('td', {}, when(d.created_at)),
      // A retry of a switched-off webhook's delivery would be refused (409).
      h('td', {}, d.status === 'failed' && w.active
        ? h('button', { type: 'button', id: `retry-${d.id}`, onclick: (event) => busy(event.currentTarget, () => retry(d)) }, 'Send again')
        : null))))));
}

async function showWebhook(id, view) {
  let w;
  let log;
  try {
    [{ data: w }, { data: log }] = await Promise.all([
      api('GET', `v1/webhooks/${id}`),
      api('GET', `v1/webhooks/${id}/deliveries?limit=${DELIVERIES_SHOWN}`),
    ]);
  } catch (err) {
    managersOnly(err, view);
    return;
  }
  if (view !== generation) return;

  // A 404 to anything done here: the webhook was deleted meanwhile (through the API, in
  // another tab), so its page goes too. True then, as the view moves on.
  const gone = (err) => {
    if (err.status !== 404 || view !== generation) return false;
    forgetWebhookDraft(w.id); // no webhook left to save it to
    go('#/webhooks', `Webhook #${w.id} no longer exists: it was deleted meanwhile.`);
    return true;
  };
  // The deliveries are redrawn in place, a page at a time, so the secret and anything else
  // on the page stay.
  const card = h('section', { class: 'card', id: 'deliveries-card' });
  const pages = pager(() => reload(), gone);
  const draw = (deliveries, next) => card.replaceChildren(...[
    h('h2', {}, pages.cursors.length ? `Older deliveries (page ${pages.cursors.length + 1})` : 'Recent deliveries'),
    deliveries.length || !pages.cursors.length ? deliveriesTable(w, deliveries, retry) : h('p', { class: 'empty', id: 'deliveries' }, 'No older deliveries.'),
    h('div', { class: 'actions' }, ...pages.buttons('deliveries', DELIVERIES_SHOWN, next),
      h('button', { type: 'button', class: 'link', id: 'refresh-deliveries', onclick: (event) => busy(event.currentTarget, () => reload().then(() => true, (err) => {
        if (gone(err)) return true;
        failed(err);
        return false;
      })) }, 'Refresh')),
  ].filter(present));
  const reload = async () => {
    const { data } = await api('GET', `v1/webhooks/${w.id}/deliveries${query({ limit: DELIVERIES_SHOWN, cursor: pages.cursor() })}`);
    if (view === generation) draw(data.deliveries, data.next_cursor);
    return data.deliveries;
  };
  // Follows one delivery until it is no longer pending, then tells how it went.
  let timer = null;
  leaving.push(() => clearTimeout(timer));
  const watch = (delivery, tries = 0) => {
    timer = setTimeout(async () => {
      let d;
      try {
        d = (await reload()).find((one) => one.id === delivery);
      } catch (err) {
        if (view === generation && !gone(err)) failed(err);
        return;
      }
      if (view !== generation) return;
      if (!d) return; // deleted meanwhile
      const last = d.attempt_log[d.attempt_log.length - 1];
      const answer = last ? (present(last.http_status) ? `HTTP ${last.http_status}` : last.error || 'no answer') : '';
      if (d.status === 'delivered') notify(`Delivery #${d.id} (${d.event_type}) delivered: the receiver answered ${answer}.`, 'info');
      else if (d.status === 'failed') notify(`Delivery #${d.id} (${d.event_type}) failed: ${answer}.`, 'error');
      else if (tries + 1 < DELIVERY_WATCH_TRIES) watch(delivery, tries + 1);
      else notify(`Delivery #${d.id} is still pending (${answer || 'no answer yet'}); Refresh shows how it goes.`, 'info');
    }, DELIVERY_WATCH_MS);
  };
  async function retry(d) {
    try {
      await api('POST', `v1/deliveries/${d.id}/retry`);
    } catch (err) {
      failed(err);
      // A 404 may be this delivery's alone; the list tells whether the webhook is gone too.
      try {
        await reload();
      } catch (again) {
        if (gone(again)) return true;
      }
      return false;
    }
    notify(`Delivery #${d.id} is being sent again…`, 'info');
    await reload().catch(() => {});
    watch(d.id);
    return true; // the table was redrawn without this button
  }
  draw(log.deliveries, log.next_cursor);

  const sendTest = async () => {
    try {
      const { data } = await api('POST', `v1/webhooks/${w.id}/test`);
      pages.cursors = []; // the test is the newest delivery
      notify(`A webhook.test is on its way as delivery #${data.id}…`, 'info');
      await reload().catch(() => {});
      watch(data.id);
    } catch (err) {
      if (gone(err)) return true;
      failed(err);
    }
    return false;
  };
  const toggle = async () => {
    try {
      await api('PATCH', `v1/webhooks/${w.id}`, { active: !w.active });
    } catch (err) {
      if (gone(err)) return true;
      failed(err);
      return false;
    }
    notify(w.active ? 'Switched off: nothing is sent to it until it is switched on.' : 'Switched on.', 'info');
    route();
    return true;
  };
  const remove = async () => {
    if (!window.confirm(`Delete webhook #${w.id}? Alerts stop going to ${w.url}, and its deliveries go with it.`)) return false;
    try {
      await api('DELETE', `v1/webhooks/${w.id}`);
    } catch (err) {
      if (gone(err)) return true;
      failed(err);
      return false;
    }
    forgetWebhookDraft(w.id);
    go('#/webhooks', `Webhook #${w.id} deleted.`);
    return true;
  };
  const button = (label, buttonId, work) => h('button', { type: 'button', id: buttonId, onclick: (event) => busy(event.currentTarget, work) }, label);

  // The form to change it, drawn on demand with what it has now. Only what differs is sent;
  // the secret stays as it is (a new one means a new webhook).
  let editing = null;
  const editButton = h('button', { type: 'button', id: 'edit-webhook', 'aria-expanded': 'false' }, 'Edit');
  const closeEdit = () => {
    forgetWebhookDraft(w.id);
    if (editing) editing.remove();
    editing = null;
    editButton.setAttribute('aria-expanded', 'false');
    editButton.focus();
  };
  const openEdit = () => {
    if (editing) {
      editing.querySelector('#wh-url').focus();
      return;
    }
    const fields = webhookFields(w);
    const save = h('button', { type: 'submit' }, 'Save changes');
    editing = h('form', { id: 'webhook-edit', class: 'card' },
      h('h2', {}, `Change webhook #${w.id}`), fields.nodes,
      h('div', { class: 'actions' }, save, h('button', { type: 'button', class: 'link', id: 'cancel-edit', onclick: closeEdit }, 'Cancel')));
    editing.addEventListener('submit', (event) => {
      event.preventDefault();
      const form = event.currentTarget;
      const body = webhookChanges(w, fields.values());
      if (!Object.keys(body).length) {
        notify('Nothing changed: nothing was sent.', 'info');
        return;
      }
      // What was typed stays in the form until the API takes it.
      busy(save, async () => {
        try {
          await api('PATCH', `v1/webhooks/${w.id}`, body);
        } catch (err) {
          if (gone(err)) return true;
          failed(err);
          if (err.status === 400) markInvalid(form, err.field);
          return false;
        }
        forgetWebhookDraft(w.id);
        notify(`Webhook #${w.id} changed: ${Object.keys(body).join(', ')}.`, 'info');
        route();
        return true;
      });
    });
    keepWebhookDraft(editing, w.id);
    editButton.setAttribute('aria-expanded', 'true');
    settings.after(editing);
    editing.querySelector('#wh-url').focus();
  };
  editButton.addEventListener('click', openEdit);

  const fact = (label, value, attrs = {}) => [h('dt', {}, label), h('dd', attrs, value)];
  const settings = h('section', { class: 'card' },
    h('h2', {}, 'Where it sends'),
    h('dl', { class: 'facts', id: 'webhook' },
      fact('URL', w.url),
      fact('Format', w.format),
      fact('Events', w.events.length ? w.events.join(', ') : 'none'),
      fact('Digest', w.digest ? webhookSends({ ...w, events: [] }) : 'none'),
      fact('Filter', webhookFilter(w.filter)),
      fact('Authorization', w.auth_set ? 'set (never shown)' : 'none'),
      w.description ? fact('Description', w.description, { dir: 'auto' }) : null,
      fact('State', webhookState(w), { id: 'webhook-state', class: w.active ? '' : 'late' }),
      w.failing_since ? fact('Failing since', when(w.failing_since), { class: 'late' }) : null,
      fact('Created', when(w.created_at))),
    h('div', { class: 'actions' },
      w.active ? button('Send a test', 'test-webhook', sendTest) : null,
      editButton,
      button(w.active ? 'Switch off' : 'Switch on', 'toggle-webhook', toggle),
      button('Delete', 'delete-webhook', remove)));
  render(
    h('h1', {}, `Webhook #${w.id}`),
    freshSecret && freshSecret.id === w.id ? secretCard(freshSecret.secret) : null,
    settings,
    card,
    h('p', {}, h('a', { href: '#/webhooks' }, 'All webhooks')));
  // Back from another page with an edit not saved: the form is open again, as it was left.
  if (readWebhookDraft(w.id)) openEdit();
}

// ---------- routing ----------

// Not the previous view under the new address: this one, which could not be shown.
function showLoadError(err) {
  // A 400 is the address's own fault (a filter the API refuses): asking again cannot help.
  const badAddress = err instanceof ApiError && err.status === 400 && location.hash.includes('?');
  render(h('h1', {}, 'Could not load this page'),
    h('p', {}, badAddress
      ? h('a', { id: 'unfiltered', href: location.hash.split('?')[0] }, 'Show it without filters')
      : h('button', { type: 'button', onclick: () => route() }, 'Try again')));
  failed(err);
}

// A callback or webhook address whose id is unknown to the API, or no id at all.
function showNotFound(path) {
  const webhook = path.startsWith('/webhooks/');
  const what = webhook ? 'webhook' : path.startsWith('/callbacks/') ? 'callback' : 'page';
  render(h('h1', {}, 'Not found'), h('p', {}, `There is no such ${what}.`),
    h('p', {}, h('a', { href: webhook ? '#/webhooks' : '#/calls' }, webhook ? 'All webhooks' : 'All calls')));
}

// keepNotice: the notice shown now is about what the new view shows (a lost lease); else an
// error notice from before goes once the view is drawn (a "Try again" that worked).
async function route(keepNotice = false) {
  leaving.forEach((stop) => stop());
  leaving = [];
  const view = ++generation;
  const notice = document.getElementById('notice');
  const before = !keepNotice && notice.className === 'error' ? notice.textContent : null;
  if (!token()) {
    showSignIn();
    return;
  }
  if (!me) {
    try {
      me = (await api('GET', 'v1/me')).data;
    } catch (err) {
      if (err.status !== 401 && view === generation) showLoadError(err);
      return;
    }
  }
  if (view !== generation) return;
  document.getElementById('nav').hidden = false;
  document.getElementById('who').replaceChildren(h('bdi', {}, me.name), ` (${me.role})`);
  document.querySelector('#nav a[data-view=reports]').hidden = !may.report();
  document.querySelector('#nav a[data-view=webhooks]').hidden = !may.webhooks();
  document.querySelector('#nav a[data-view=answers]').hidden = !may.answers();
  const [path, search] = (location.hash.slice(1) || '/calls').split('?');
  if (freshSecret && path !== `/webhooks/${freshSecret.id}`) freshSecret = null;
  const params = new URLSearchParams(search || '');
  for (const link of document.querySelectorAll('#nav a')) {
    link.classList.toggle('current', path === `/${link.dataset.view}` || path.startsWith(`/${link.dataset.view}/`));
  }
  try {
    const callback = path.match(/^\/callbacks\/([1-9][0-9]{0,17})$/);
    const webhook = path.match(/^\/webhooks\/([1-9][0-9]{0,17})$/);
    if (callback) await showCallback(callback[1], view);
    else if (webhook) await showWebhook(webhook[1], view);
    else if (path === '/reports') await showReports(params, view);
    else if (path === '/answers') await showAnswers(params, view);
    else if (path === '/webhooks') await showWebhooks(view);
    else if (path === '/calls' || path === '/') await showCalls(params, view);
    // An id that cannot be one (abc, 0, too many digits), or a page there is not (a typo,
    // an old link): said so, rather than another page under an address that is not its own.
    else showNotFound(path);
    if (before !== null && view === generation && notice.textContent === before) notify('');
  } catch (err) {
    if (view !== generation) return;
    if (err.status === 404) showNotFound(path);
    else showLoadError(err);
  }
}

// A notice to show on the view being gone to; any other goes when the view changes.
let carried = null;

function go(hash, message) {
  carried = message || null;
  location.hash = hash;
}

window.addEventListener('hashchange', () => {
  notify(carried || '', 'info');
  carried = null;
  route();
});
document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('sign-out').addEventListener('click', () => signOut(null, true));
  route();
});
