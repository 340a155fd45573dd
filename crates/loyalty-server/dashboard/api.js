// The dashboard's access to the API, and the formatting of what it answers.
//
// The credential (an API key or a member token) lives in sessionStorage only: it goes with the
// tab, never into localStorage or a cookie. Every call sends it as `Authorization: Bearer`.
// Money, rates and model figures arrive as decimal strings and are formatted as strings
// (Intl.NumberFormat reads a string as an exact decimal): no money arithmetic is done here.

const STORAGE_KEY = 'loyalty.dashboard.credential';

export function credential() {
  return sessionStorage.getItem(STORAGE_KEY);
}

export function storeCredential(value) {
  sessionStorage.setItem(STORAGE_KEY, value);
}

export function forgetCredential() {
  sessionStorage.clear();
}

/** An answer the API refused: its problem document's title and detail. */
export class ApiProblem extends Error {
  constructor(status, body) {
    const title = (body && body.title) || `HTTP ${status}`;
    const detail = (body && body.detail) || '';
    super(detail ? `${title}: ${detail}` : title);
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.type = body && body.type;
  }
}

/** Calls the API; answers `{status, body}` without throwing on a refusal. */
export async function request(path, { method = 'GET', body, key } = {}) {
  const headers = { Accept: 'application/json' };
  const bearer = key || credential();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
    credentials: 'omit',
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = { title: `HTTP ${response.status}`, detail: text.slice(0, 200) };
  }
  return { status: response.status, body: json };
}

/** Calls the API; answers the body, or throws an ApiProblem. */
export async function get(path) {
  const answer = await request(path);
  if (answer.status < 200 || answer.status > 299) throw new ApiProblem(answer.status, answer.body);
  return answer.body;
}

export async function post(path, body) {
  const answer = await request(path, { method: 'POST', body });
  if (answer.status < 200 || answer.status > 299) throw new ApiProblem(answer.status, answer.body);
  return answer.body;
}

// ------------------------------------------------------------------ who is calling

/** A member token is a JWT: three dot-separated parts (API keys never are). */
export function isMemberToken(value) {
  const parts = value.split('.');
  return parts.length === 3 && parts.every((p) => p.length > 0);
}

/** The member a token acts for (its `sub` claim). The signature is the server's to check. */
export function tokenSubject(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const padded = payload + '='.repeat((4 - (payload.length % 4)) % 4);
    return JSON.parse(atob(padded)).sub || null;
  } catch {
    return null;
  }
}

/**
 * What the credential may read, found by asking: each probe is a call whose answer is 403
 * exactly when the role may not make it, and that changes nothing (a goodwill grant with an
 * empty body is refused as invalid once the role is let in, before anything is decided).
 * Answers the capabilities, or throws the API's problem for a credential it does not accept.
 */
export async function capabilities(value) {
  if (isMemberToken(value)) {
    const member = tokenSubject(value);
    if (!member) throw new ApiProblem(401, { title: 'Unauthorized', detail: 'this token names no member' });
    const answer = await request(`/v1/members/${encodeURIComponent(member)}`, { key: value });
    if (answer.status === 401 || answer.status === 403) throw new ApiProblem(answer.status, answer.body);
    return { role: 'member', member, readMembers: true, history: true };
  }
  // Probes that change nothing and compute nothing: the role check comes before the query's,
  // so a query out of bounds answers 403 to a role that may not, and 422 (before any report is
  // computed) to one that may.
  const probes = {
    audit: request('/v1/totals', { key: value }),
    tiers: request('/v1/analytics/tiers?months=0', { key: value }),
    analytics: request('/v1/analytics/at-risk?limit=0', { key: value }),
    readMembers: request('/v1/members/~', { key: value }),
    asOf: request('/v1/members/~/as-of', { key: value }),
    goodwill: request('/v1/members/~/goodwill', { method: 'POST', body: {}, key: value }),
  };
  const answers = {};
  for (const [name, answer] of Object.entries(probes)) answers[name] = await answer;
  const refused = Object.values(answers).find((a) => a.status === 401);
  if (refused) throw new ApiProblem(401, refused.body);
  const may = (name) => answers[name].status !== 403;
  const caps = {
    role: 'key',
    audit: may('audit'),
    tiers: may('tiers'),
    analytics: may('analytics'),
    readMembers: may('readMembers'),
    history: may('readMembers'),
    asOf: may('asOf'),
    goodwill: may('goodwill'),
  };
  if (caps.audit && caps.analytics && caps.goodwill) caps.role = 'admin';
  else if (caps.audit) caps.role = 'auditor';
  else if (caps.analytics) caps.role = 'analyst';
  else if (caps.goodwill) caps.role = 'support';
  else if (caps.readMembers) caps.role = 'app';
  else caps.role = 'other';
  return caps;
}

// ------------------------------------------------------------------ the program's currency and timezone

/** The program's currency and timezone, and whether they were read from the program. */
export const locale = { currency: null, timeZone: 'UTC', fromProgram: false, note: '' };

/**
 * The currency and the timezone: the served OpenAPI document (public, so for every role)
 * states them in its `info` as `x-loyalty-program`. A server without it: UTC, no currency
 * sign, and the page says so.
 */
export async function loadLocale() {
  locale.currency = null;
  locale.timeZone = 'UTC';
  locale.fromProgram = false;
  try {
    const doc = await get('/v1/openapi.json');
    const program = doc.info['x-loyalty-program'] || {};
    if (typeof program.currency === 'string' && /^[A-Z]{3}$/.test(program.currency)) {
      locale.currency = program.currency;
    }
    if (typeof program.timezone === 'string' && validTimeZone(program.timezone)) {
      locale.timeZone = program.timezone;
      locale.fromProgram = true;
    }
  } catch {
    locale.fromProgram = false;
  }
  const parts = [];
  if (!locale.fromProgram) parts.push('times are shown in UTC (the program\'s timezone could not be read)');
  if (!locale.currency) parts.push('amounts are shown without a currency sign (the currency could not be read)');
  locale.note = parts.length ? `Note: ${parts.join('; ')}.` : '';
  rebuildFormats();
}

/** Whether the browser knows `zone` as an IANA timezone (it throws a RangeError if not). */
function validTimeZone(zone) {
  try {
    new Intl.DateTimeFormat(undefined, { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

let formats = {};

function rebuildFormats() {
  const money = locale.currency
    ? new Intl.NumberFormat(undefined, { style: 'currency', currency: locale.currency })
    : new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  formats = {
    points: new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 }),
    money,
    percent: new Intl.NumberFormat(undefined, { style: 'percent', maximumFractionDigits: 2 }),
    decimal: new Intl.NumberFormat(undefined, { maximumFractionDigits: 4 }),
    dateTime: new Intl.DateTimeFormat(undefined, {
      timeZone: locale.timeZone, dateStyle: 'medium', timeStyle: 'short',
    }),
    date: new Intl.DateTimeFormat(undefined, { timeZone: locale.timeZone, dateStyle: 'medium' }),
    // Calendar days (`2026-03-01`) are the program's own dates: shown as written, in UTC.
    day: new Intl.DateTimeFormat(undefined, { timeZone: 'UTC', dateStyle: 'medium' }),
    month: new Intl.DateTimeFormat(undefined, { timeZone: 'UTC', year: 'numeric', month: 'short' }),
  };
}
rebuildFormats();

export const fmt = {
  points: (n) => (n === null || n === undefined ? '–' : formats.points.format(n)),
  /** A decimal string of money, formatted exactly (never through a float). */
  money: (s) => (s === null || s === undefined ? '–' : formats.money.format(String(s))),
  /** A decimal string between 0 and 1, as a percentage. */
  rate: (s) => (s === null || s === undefined ? '–' : formats.percent.format(String(s))),
  decimal: (s) => (s === null || s === undefined ? '–' : formats.decimal.format(String(s))),
  dateTime: (iso) => (iso ? formats.dateTime.format(new Date(iso)) : '–'),
  date: (iso) => (iso ? formats.date.format(new Date(iso)) : '–'),
  day: (ymd) => (ymd ? formats.day.format(new Date(`${ymd}T00:00:00Z`)) : '–'),
  month: (ymd) => (ymd ? formats.month.format(new Date(`${ymd}T00:00:00Z`)) : '–'),
};

// ------------------------------------------------------------------ calendar in the program's timezone

/** Minutes the zone is ahead of UTC at the instant `ms`. */
function offsetMinutes(ms, timeZone) {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).formatToParts(new Date(ms));
  const part = (type) => Number(parts.find((p) => p.type === type).value);
  const asUtc = Date.UTC(part('year'), part('month') - 1, part('day'), part('hour'), part('minute'), part('second'));
  return Math.round((asUtc - (ms - (ms % 1000))) / 60000);
}

/** The first instant of the local day `y-m-d` (month from 0) in `timeZone`, as a Date. */
export function zonedMidnight(y, m, d, timeZone = locale.timeZone) {
  const guess = Date.UTC(y, m, d);
  let at = guess - offsetMinutes(guess, timeZone) * 60000;
  const again = guess - offsetMinutes(at, timeZone) * 60000;
  if (again !== at) at = again;
  return new Date(at);
}

/** The local calendar date of an instant in `timeZone`: {y, m (from 0), d}. */
export function zonedDate(date, timeZone = locale.timeZone) {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone, year: 'numeric', month: '2-digit', day: '2-digit',
  }).formatToParts(date);
  const part = (type) => Number(parts.find((p) => p.type === type).value);
  return { y: part('year'), m: part('month') - 1, d: part('day') };
}
