// The dashboard's views: each renders one section from the API's answers into a container.
// Every chart has a table of the same numbers beside it; figures the end-to-end tests compare
// with the API carry a data-testid, and data-value holds the API's own value.
import {
  ApiProblem, fmt, get, locale, post, zonedDate, zonedMidnight,
} from './api.js';

// ------------------------------------------------------------------ building the page

/** An element with attributes (`testid` becomes data-testid) and children (text or nodes). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'testid') el.dataset.testid = value;
    else if (name === 'class') el.className = value;
    else if (name.startsWith('data-')) el.setAttribute(name, value);
    else if (name in el && typeof el[name] !== 'function' && name !== 'list') el[name] = value;
    else el.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/**
 * A random id for a command's idempotency key. `crypto.randomUUID` exists only in secure
 * contexts (HTTPS, localhost); a dashboard served over plain HTTP on an internal host gets the
 * same 122 random bits from `crypto.getRandomValues`, which every context has.
 */
function uniqueId() {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A table cell showing `text`, with the API's raw value and a test id when given. */
function td(text, { testid, value, cls, title, ...data } = {}) {
  const attrs = { testid, class: cls, title };
  if (value !== undefined && value !== null) attrs['data-value'] = String(value);
  for (const [k, v] of Object.entries(data)) attrs[`data-${k}`] = v;
  return h('td', attrs, text);
}

/** A table in a horizontally scrolling, keyboard-focusable region. */
function table(caption, head, rows, { testid, cls } = {}) {
  const thead = h('thead', {}, h('tr', {}, head.map((label) => h('th', { scope: 'col' }, label))));
  const tbody = h('tbody', {}, rows);
  const id = `t-${Math.random().toString(36).slice(2, 9)}`;
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-labelledby': id },
    h('table', { testid, class: cls }, h('caption', { id }, caption), thead, tbody));
}

const charts = [];

/** Destroys the charts of the view being left. */
export function destroyCharts() {
  while (charts.length) charts.pop().destroy();
}

/** A chart in a figure: the canvas is an image with a label; its numbers are in the table. */
function chart(label, config, testid) {
  const canvas = h('canvas', { role: 'img', 'aria-label': label, testid });
  const figure = h('figure', { class: 'chart' }, h('div', { class: 'chart-box' }, canvas),
    h('figcaption', {}, `${label} The same numbers are in the table below.`));
  // Created once the figure is in the page (Chart.js measures its container).
  queueMicrotask(() => {
    if (!window.Chart) {
      figure.replaceChildren(h('p', { class: 'note' }, 'The chart library did not load; the table has the numbers.'));
      return;
    }
    charts.push(new window.Chart(canvas, {
      ...config,
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        plugins: { legend: { labels: { color: '#1a1a1a' } } },
        ...config.options,
      },
    }));
  });
  return figure;
}

const COLOURS = ['#1f5fa8', '#b8420f', '#2e7d32', '#6a1b9a', '#8d6e00', '#00695c'];

/** The answer to show for a refused call: the problem's title and detail. */
export function problem(err) {
  if (err instanceof ApiProblem) {
    return h('div', { class: 'problem', role: 'alert', testid: 'problem' },
      h('strong', {}, err.title), err.detail ? ` ${err.detail}` : '');
  }
  return h('div', { class: 'problem', role: 'alert', testid: 'problem' },
    h('strong', {}, 'Error'), ` ${err && err.message ? err.message : err}`);
}

function heading(title, intro) {
  return [h('h2', { tabindex: '-1', class: 'view-title' }, title), intro ? h('p', { class: 'intro' }, intro) : null];
}

/** Money as a number for plotting only; the tables show the exact strings. */
const plot = (s) => (s === null || s === undefined ? null : Number(s));

// ------------------------------------------------------------------ the liability over time

let seriesCache = null;

/** Forgets what was fetched for the previous credential. */
export function resetCache() {
  seriesCache = null;
}

/**
 * The liability report now and as of the start of each of the last 13 months in the
 * program's timezone (the end of the month before): what views 1 and 2 show.
 */
async function liabilitySeries() {
  if (seriesCache) return seriesCache;
  const now = await get('/v1/liability');
  const at = new Date(now.as_of);
  const { y, m } = zonedDate(at);
  const reports = [];
  for (let i = 12; i >= 0; i -= 1) {
    const start = zonedMidnight(y, m - i, 1);
    if (start >= at) continue;
    // One at a time: each is a replay of the log up to that instant.
    reports.push(await get(`/v1/liability?as_of=${encodeURIComponent(start.toISOString())}`));
  }
  reports.push(now);
  seriesCache = reports;
  return reports;
}

export async function liability(view) {
  view.append(...heading('Points liability and breakage over time',
    'What the program owes in points at the end of each month (the start of the next, in the '
    + 'program\'s timezone) and now, its value, and the breakage the program\'s own history of '
    + 'expiries predicts (GET /v1/liability).'));
  const reports = await liabilitySeries();
  const labels = reports.map((r, i) => (i === reports.length - 1 ? `Now (${fmt.date(r.as_of)})` : fmt.date(r.as_of)));
  view.append(chart('Line chart of the points liability, the expected breakage and the liability net of breakage, by date.', {
    type: 'line',
    data: {
      labels,
      datasets: [
        { label: 'Liability', data: reports.map((r) => plot(r.totals.liability)), borderColor: COLOURS[0], backgroundColor: COLOURS[0] },
        { label: 'Expected breakage', data: reports.map((r) => plot(r.breakage.expected_value)), borderColor: COLOURS[1], backgroundColor: COLOURS[1] },
        { label: 'Net of breakage', data: reports.map((r) => plot(r.liability_net_of_breakage)), borderColor: COLOURS[2], backgroundColor: COLOURS[2] },
      ],
    },
    options: { scales: { y: { beginAtZero: true, ticks: { callback: (v) => fmt.money(v) } } } },
  }, 'liability-chart'));
  const rows = reports.map((r, i) => h('tr', { testid: 'liability-row', 'data-as-of': r.as_of },
    h('th', { scope: 'row' }, labels[i]),
    td(fmt.points(r.totals.points_outstanding), { testid: 'liability-points', value: r.totals.points_outstanding, cls: 'num' }),
    td(fmt.money(r.totals.liability), { testid: 'liability-value', value: r.totals.liability, cls: 'num' }),
    td(fmt.rate(r.breakage.rate), { testid: 'liability-rate', value: r.breakage.rate, cls: 'num' }),
    td(fmt.money(r.breakage.expected_value), { testid: 'liability-breakage', value: r.breakage.expected_value, cls: 'num' }),
    td(fmt.money(r.liability_net_of_breakage), { testid: 'liability-net', value: r.liability_net_of_breakage, cls: 'num' })));
  view.append(table('Liability by date', ['As of', 'Points outstanding', 'Liability', 'Breakage rate', 'Expected breakage', 'Net of breakage'], rows, { testid: 'liability-table' }));
}

// ------------------------------------------------------------------ issued, redeemed, expired

export async function flows(view) {
  view.append(...heading('Points issued, redeemed and expired per month',
    'The change of the program\'s totals over each month (GET /v1/liability at each month\'s '
    + 'end: lifetime points earned, points redeemed, points expired); the last row is the '
    + 'month so far.'));
  const reports = await liabilitySeries();
  const periods = [];
  for (let i = 1; i < reports.length; i += 1) {
    const a = reports[i - 1].totals;
    const b = reports[i].totals;
    // Points are integers: their differences are exact.
    periods.push({
      from: reports[i - 1].as_of,
      to: reports[i].as_of,
      label: i === reports.length - 1 ? `${fmt.date(reports[i - 1].as_of)} to now` : `${fmt.date(reports[i - 1].as_of)} to ${fmt.date(reports[i].as_of)}`,
      issued: b.lifetime_earned - a.lifetime_earned,
      redeemed: b.redeemed - a.redeemed,
      expired: b.breakage_points - a.breakage_points,
    });
  }
  view.append(chart('Bar chart of the points issued, redeemed and expired in each month.', {
    type: 'bar',
    data: {
      labels: periods.map((p) => p.label),
      datasets: [
        { label: 'Issued', data: periods.map((p) => p.issued), backgroundColor: COLOURS[0] },
        { label: 'Redeemed', data: periods.map((p) => p.redeemed), backgroundColor: COLOURS[1] },
        { label: 'Expired', data: periods.map((p) => p.expired), backgroundColor: COLOURS[2] },
      ],
    },
    options: { scales: { y: { ticks: { callback: (v) => fmt.points(v) } } } },
  }, 'flows-chart'));
  const rows = periods.map((p) => h('tr', { testid: 'flows-row', 'data-from': p.from, 'data-to': p.to },
    h('th', { scope: 'row' }, p.label),
    td(fmt.points(p.issued), { testid: 'flows-issued', value: p.issued, cls: 'num' }),
    td(fmt.points(p.redeemed), { testid: 'flows-redeemed', value: p.redeemed, cls: 'num' }),
    td(fmt.points(p.expired), { testid: 'flows-expired', value: p.expired, cls: 'num' })));
  view.append(table('Points per month', ['Period', 'Issued', 'Redeemed', 'Expired'], rows, { testid: 'flows-table' }));
}

// ------------------------------------------------------------------ tiers

export async function tiers(view) {
  view.append(...heading('Tier distribution and movement',
    'Members per tier now, and for each month the members who reached the tier they hold '
    + '(GET /v1/analytics/tiers; only each member\'s latest change is kept, so a member who '
    + 'changed twice counts once).'));
  const report = await get('/v1/analytics/tiers?months=12');
  view.append(h('p', { class: 'headline' }, 'Members counted: ',
    h('strong', { testid: 'tiers-members', 'data-value': report.members }, fmt.points(report.members)),
    ` (as of ${fmt.dateTime(report.as_of)})`));
  view.append(chart('Bar chart of the number of members in each tier now.', {
    type: 'bar',
    data: {
      labels: report.tiers.map((t) => t.name),
      datasets: [{ label: 'Members', data: report.tiers.map((t) => t.members), backgroundColor: COLOURS[0] }],
    },
    options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  }, 'tiers-chart'));
  view.append(table('Members per tier now', ['Tier', 'Members'], report.tiers.map((t) => h('tr', {},
    h('th', { scope: 'row' }, t.name),
    td(fmt.points(t.members), { testid: 'tier-count', value: t.members, tier: t.name, cls: 'num' })))));
  view.append(chart('Stacked bar chart of the members who reached each tier, by month.', {
    type: 'bar',
    data: {
      labels: report.months.map((m) => fmt.month(m.period.start)),
      datasets: report.tiers.map((t, i) => ({
        label: t.name,
        data: report.months.map((m) => m.reached[i].members),
        backgroundColor: COLOURS[i % COLOURS.length],
      })),
    },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } },
  }, 'tier-moves-chart'));
  view.append(table('Members who reached each tier, by month', ['Month', ...report.tiers.map((t) => t.name)],
    report.months.map((m) => h('tr', {}, h('th', { scope: 'row' }, fmt.month(m.period.start)),
      m.reached.map((t) => td(fmt.points(t.members), {
        testid: 'tier-reached', value: t.members, tier: t.name, month: m.period.start, cls: 'num',
      }))))));
}

// ------------------------------------------------------------------ cohorts

export async function cohorts(view) {
  view.append(...heading('Retention by cohort',
    'For each enrollment month, the share of its members who bought in that month and in each '
    + 'month after it (GET /v1/analytics/cohorts). Darker cells are higher shares; every cell '
    + 'shows its number. The last month is in progress.'));
  const report = await get('/v1/analytics/cohorts');
  const width = Math.max(0, ...report.cohorts.map((c) => c.rates.length));
  const head = ['Cohort', 'Members', ...Array.from({ length: width }, (_, i) => `+${i}`)];
  const rows = report.cohorts.map((c) => h('tr', { testid: 'cohort-row', 'data-cohort': c.cohort.start },
    h('th', { scope: 'row' }, fmt.month(c.cohort.start)),
    td(fmt.points(c.members), { testid: 'cohort-members', value: c.members, cls: 'num' }),
    Array.from({ length: width }, (_, i) => {
      if (i >= c.rates.length) return td('', { cls: 'heat-none' });
      const rate = c.rates[i];
      // Ten shades by the share, from the decimal string's first digits.
      const shade = Math.min(10, Math.round(Number(rate) * 10));
      return td(fmt.rate(rate), {
        testid: 'cohort-rate', value: rate, cohort: c.cohort.start, offset: i,
        cls: `num heat heat-${shade}`, title: `${c.active[i]} of ${c.members} members`,
      });
    })));
  view.append(table('Share of each cohort that bought, by months since enrolling', head, rows, { testid: 'cohort-table', cls: 'heatmap' }));
  view.append(h('p', { class: 'legend' }, 'Scale: ',
    [0, 2, 4, 6, 8, 10].map((s) => h('span', { class: `swatch heat-${s}` }, `${s * 10}%`))));
}

// ------------------------------------------------------------------ concentration

export async function concentration(view) {
  view.append(...heading('Concentration of spend',
    'The share of net spend (refunds deducted) brought by the top members '
    + '(GET /v1/analytics/concentration).'));
  const report = await get('/v1/analytics/concentration');
  const top = report.top_20;
  view.append(h('p', { class: 'headline' }, top
    ? ['The top 20% of members (',
      h('strong', { testid: 'top20-members', 'data-value': top.members }, fmt.points(top.members)), ') bring ',
      h('strong', { testid: 'top20-share', 'data-value': top.share ?? '' }, fmt.rate(top.share)), ' of net spend: ',
      h('strong', { testid: 'top20-spend', 'data-value': top.spend }, fmt.money(top.spend)), ' of ',
      h('strong', { testid: 'net-spend', 'data-value': report.net_spend }, fmt.money(report.net_spend)), '.']
    : 'No member has bought yet.'));
  view.append(chart('Line chart of the share of net spend against the share of members, the largest spenders first.', {
    type: 'line',
    data: {
      labels: ['0%', ...report.curve.map((p) => `Top ${fmt.decimal(p.percent)}%`)],
      datasets: [{
        label: 'Share of net spend (%)',
        data: [0, ...report.curve.map((p) => (p.share === null ? null : plot(p.share) * 100))],
        borderColor: COLOURS[0],
        backgroundColor: COLOURS[0],
      }],
    },
    options: { scales: { y: { beginAtZero: true, max: 100 } } },
  }, 'concentration-chart'));
  view.append(table('Share of net spend by top members', ['Top members', 'Members', 'Net spend', 'Share'],
    report.curve.map((p) => h('tr', { testid: 'concentration-row', 'data-percent': p.percent },
      h('th', { scope: 'row' }, `${fmt.decimal(p.percent)}%`),
      td(fmt.points(p.members), { testid: 'concentration-members', value: p.members, cls: 'num' }),
      td(fmt.money(p.spend), { testid: 'concentration-spend', value: p.spend, cls: 'num' }),
      td(fmt.rate(p.share), { testid: 'concentration-share', value: p.share ?? '', cls: 'num' })))));
}

// ------------------------------------------------------------------ at-risk members

export async function atRisk(view, caps) {
  view.append(...heading('Members at risk',
    'Members the purchase models give up on, by value at risk: (1 - P(alive)) times what they '
    + 'bring over the horizon if still customers (GET /v1/analytics/at-risk).'));
  const report = await get('/v1/analytics/at-risk?limit=20');
  view.append(h('p', { class: 'headline' }, `Models fitted up to ${fmt.day(report.as_of)}; at risk below P(alive) ${fmt.decimal(report.p_alive_below)}; horizon ${report.horizon} ${report.time_unit}.`));
  const points = h('input', {
    id: 'winback-points', type: 'number', min: '1', step: '1', value: '100', inputMode: 'numeric', required: true,
  });
  view.append(h('div', { class: 'controls' },
    h('label', { htmlFor: 'winback-points' }, 'Win-back points'), points,
    h('p', { class: 'note' }, caps.goodwill
      ? 'A win-back grants these points as goodwill (POST /v1/members/{id}/goodwill, reason "win-back"), once per click.'
      : 'This credential may not grant goodwill points: the win-back buttons are disabled.')));
  const rows = report.members.map((m) => {
    // A live region inside the cell (a role on the <td> itself would take away its cell role).
    const result = h('span', { testid: 'winback-result', role: 'status' });
    const button = h('button', {
      type: 'button', disabled: !caps.goodwill, testid: 'winback', 'data-member': m.member_id,
      'aria-label': `Win back ${m.member_id}`,
    }, 'Win back');
    button.addEventListener('click', async () => {
      const n = Number(points.value);
      if (!Number.isInteger(n) || n < 1) {
        result.replaceChildren(problem(new Error('enter a whole number of points, at least 1')));
        return;
      }
      button.disabled = true;
      result.textContent = 'Granting…';
      try {
        const answer = await post(`/v1/members/${encodeURIComponent(m.member_id)}/goodwill`, {
          complaint_id: `win-back-${uniqueId()}`,
          points: n,
          reason_code: 'win-back',
          note: 'Win-back offer from the dashboard\'s at-risk list',
          occurred_at: new Date().toISOString(),
        });
        result.replaceChildren(`Granted ${fmt.points(answer.outcome.points ?? n)} points`);
        result.dataset.position = answer.position;
      } catch (err) {
        result.replaceChildren(problem(err));
      } finally {
        button.disabled = false;
      }
    });
    const member = caps.readMembers
      ? h('a', { href: `#member/${encodeURIComponent(m.member_id)}` }, m.member_id)
      : m.member_id;
    return h('tr', { testid: 'atrisk-row', 'data-member': m.member_id },
      h('th', { scope: 'row' }, member),
      td(fmt.decimal(m.p_alive), { testid: 'atrisk-palive', value: m.p_alive, cls: 'num' }),
      td(fmt.money(m.expected_value), { testid: 'atrisk-expected', value: m.expected_value, cls: 'num' }),
      td(fmt.money(m.value_at_risk), { testid: 'atrisk-value', value: m.value_at_risk, cls: 'num' }),
      h('td', {}, button), h('td', {}, result));
  });
  view.append(table('Members at risk, largest value at risk first', ['Member', 'P(alive)', 'Expected value', 'Value at risk', 'Action', 'Result'], rows, { testid: 'atrisk-table' }));
}

// ------------------------------------------------------------------ a member

/** The member's statement, oldest first (up to 1,000 lines). */
async function statement(member) {
  const lines = [];
  let cursor = null;
  for (let page = 0; page < 10; page += 1) {
    const query = cursor === null ? '' : `&cursor=${cursor}`;
    const answer = await get(`/v1/members/${encodeURIComponent(member)}/history?limit=100${query}`);
    lines.push(...answer.lines);
    cursor = answer.next_cursor;
    if (cursor === null || cursor === undefined) return { lines: lines.reverse(), complete: true };
  }
  return { lines: lines.reverse(), complete: false };
}

/** What each event names: the redemption, the refund, the adjustment... */
function eventLabel(line) {
  const d = line.data || {};
  const id = d.redemption_id || d.refund_id || d.adjustment_id || d.complaint_id || d.transaction_id || d.activity_id;
  return id ? `${line.event_type} ${id}` : line.event_type;
}

/** Every object in `value` (depth first). */
function* objects(value) {
  if (Array.isArray(value)) {
    for (const v of value) yield* objects(v);
  } else if (value && typeof value === 'object') {
    yield value;
    for (const v of Object.values(value)) yield* objects(v);
  }
}

/**
 * The member's lots from the statement's stored events: each credit (an object with a
 * `lot_id` and a `spendable_from`) opens a lot; draws (`draws`, `forfeited`) take from lots,
 * `restored` gives back, and `PointsExpired` expires what was left.
 */
export function explainLots(lines) {
  const lots = new Map();
  const lot = (id) => {
    if (!lots.has(id)) lots.set(id, { id, points: 0, earned: null, spendableFrom: null, expiresAt: null, draws: [], expired: 0, restored: 0 });
    return lots.get(id);
  };
  for (const line of lines) {
    const data = line.data || {};
    const label = eventLabel(line);
    if (line.event_type === 'PointsExpired' && data.lot_id) {
      lot(data.lot_id).expired += Number(data.points) || 0;
      continue;
    }
    for (const o of objects(data)) {
      if (typeof o.lot_id === 'string' && o.spendable_from) {
        const l = lot(o.lot_id);
        l.points += (Number(o.points) || 0) - (Number(o.debt_repaid) || 0);
        l.earned = { label, at: line.occurred_at };
        l.spendableFrom = o.spendable_from;
        l.expiresAt = o.expiry && o.expiry.kind === 'at' ? o.expiry.at : (o.expiry ? o.expiry.kind : null);
      }
      for (const key of ['draws', 'forfeited']) {
        if (Array.isArray(o[key])) {
          for (const d of o[key]) {
            if (d && typeof d.lot_id === 'string') lot(d.lot_id).draws.push({ label, points: Number(d.points) || 0, at: line.occurred_at });
          }
        }
      }
      if (Array.isArray(o.restored)) {
        for (const d of o.restored) {
          if (d && typeof d.lot_id === 'string') lot(d.lot_id).restored += Number(d.points) || 0;
        }
      }
    }
  }
  return [...lots.values()].map((l) => ({
    ...l,
    left: l.points - l.draws.reduce((s, d) => s + d.points, 0) + l.restored - l.expired,
  }));
}

export async function member(view, caps, arg) {
  view.append(...heading('Member',
    'A member\'s balance and tier, the balance explained lot by lot, the statement, and the '
    + 'balance as of any date.'));
  const input = h('input', {
    id: 'member-id', name: 'member-id', type: 'text', autocomplete: 'off', spellcheck: false,
    required: true, value: arg || caps.member || '', readOnly: caps.role === 'member',
  });
  const form = h('form', { class: 'controls', testid: 'member-form' },
    h('label', { htmlFor: 'member-id' }, 'Member id'), input, h('button', { type: 'submit' }, 'Open'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const id = input.value.trim();
    if (id) location.hash = `member/${encodeURIComponent(id)}`;
  });
  view.append(form);
  const id = caps.role === 'member' ? caps.member : arg;
  if (!id) return;
  const profile = await get(`/v1/members/${encodeURIComponent(id)}`);
  const b = profile.balance;
  const t = profile.tier;
  const fact = (label, text, testid, value) => [h('dt', {}, label), h('dd', { testid, 'data-value': value }, text)];
  view.append(h('section', { class: 'card', 'aria-labelledby': 'member-summary' },
    h('h3', { id: 'member-summary' }, `${profile.member_id}: balance and tier`),
    h('dl', { class: 'facts' },
      fact('Status', profile.status, 'member-status', profile.status),
      fact('Available', fmt.points(b.available), 'member-available', b.available),
      fact('Pending', fmt.points(b.pending), 'member-pending', b.pending),
      fact('Debt', fmt.points(b.debt), 'member-debt', b.debt),
      fact('Balance', fmt.points(b.balance), 'member-balance', b.balance),
      fact('Earned (lifetime)', fmt.points(b.lifetime_earned), 'member-lifetime', b.lifetime_earned),
      fact('Redeemed', fmt.points(b.redeemed), 'member-redeemed', b.redeemed),
      fact('Expired', fmt.points(b.expired), 'member-expired', b.expired),
      fact('Next expiry', b.next_expiry ? `${fmt.points(b.next_expiry.points)} on ${fmt.date(b.next_expiry.at)}` : 'none', 'member-next-expiry'),
      fact('Tier', t.current.name, 'member-tier', t.current.name),
      fact('Next tier', t.next ? `${t.next.name}: ${fmt.decimal(t.next.remaining)} to go` : 'top tier', 'member-next-tier'))));

  if (caps.history) {
    const { lines, complete } = await statement(id);
    view.append(h('h3', {}, 'The balance, lot by lot'));
    if (!complete) {
      // Draws on lots credited before the events read would be shown against nothing: no
      // table rather than a wrong one.
      view.append(h('p', { class: 'note', testid: 'lots-incomplete' }, 'This member has more than 1,000 events: the lot-by-lot view needs the whole history, which the page does not read. The statement below shows the latest 1,000; the member\'s events (the event log view, or `loyalty statement`) hold every lot and every draw.'));
    }
    const lots = complete ? explainLots(lines) : [];
    view.append(h('p', { class: 'intro' }, 'Each lot is a credit of points; redemptions, refunds and adjustments draw from lots (the soonest to expire first), cancellations give back, and the scheduler expires what is left at the lot\'s expiry.'));
    if (complete) view.append(table('Lots', ['Lot', 'Earned by', 'Points', 'Spendable from', 'Expires', 'Drawn by', 'Expired', 'Left'],
      lots.map((l) => h('tr', { testid: 'lot-row', 'data-lot': l.id },
        h('th', { scope: 'row', class: 'wrap' }, l.id),
        td(l.earned ? `${l.earned.label} (${fmt.date(l.earned.at)})` : '–', { cls: 'wrap' }),
        td(fmt.points(l.points), { testid: 'lot-points', value: l.points, cls: 'num' }),
        td(fmt.date(l.spendableFrom)),
        td(l.expiresAt && l.expiresAt.includes('T') ? fmt.date(l.expiresAt) : (l.expiresAt || '–')),
        td(l.draws.length ? h('ul', { class: 'plain' }, l.draws.map((d) => h('li', {}, `${fmt.points(d.points)} by ${d.label}`))) : '–',
          { testid: 'lot-draws', cls: 'wrap', value: l.draws.map((d) => `${d.label}:${d.points}`).join(';') }),
        td(fmt.points(l.expired), { testid: 'lot-expired', value: l.expired, cls: 'num' }),
        td(fmt.points(l.left), { testid: 'lot-left', value: l.left, cls: 'num' }))), { testid: 'lots-table' }));
    view.append(h('h3', {}, 'Statement'));
    view.append(table('Statement, oldest first', ['Date', 'Event', 'Description', 'Points'],
      lines.map((l) => h('tr', { testid: 'statement-row', 'data-revision': l.revision },
        h('th', { scope: 'row' }, fmt.dateTime(l.occurred_at)),
        td(l.event_type),
        td(l.description, { cls: 'wrap' }),
        td(fmt.points(l.points), { testid: 'statement-points', value: l.points, cls: 'num' }))), { testid: 'statement-table' }));
  }

  if (caps.asOf) {
    const today = zonedDate(new Date());
    const pad = (n) => String(n).padStart(2, '0');
    const dateInput = h('input', { id: 'as-of-date', type: 'date', required: true, value: `${today.y}-${pad(today.m + 1)}-${pad(today.d)}` });
    const out = h('div', { testid: 'as-of-result', 'aria-live': 'polite' });
    const asOfForm = h('form', { class: 'controls', testid: 'as-of-form' },
      h('label', { htmlFor: 'as-of-date' }, 'Balance as of the end of'), dateInput,
      h('button', { type: 'submit' }, 'Show'));
    asOfForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      const [y, m, d] = dateInput.value.split('-').map(Number);
      if (!y || !m || !d) return;
      // The end of that local day: the instant before the next one starts.
      const at = new Date(zonedMidnight(y, m - 1, d + 1).getTime() - 1000).toISOString().replace('.000Z', 'Z');
      out.replaceChildren('Replaying…');
      out.removeAttribute('data-as-of');
      try {
        const s = await get(`/v1/members/${encodeURIComponent(id)}/as-of?as_of=${encodeURIComponent(at)}`);
        out.dataset.asOf = at;
        out.replaceChildren(h('dl', { class: 'facts' },
          fact('As of', fmt.dateTime(s.as_of), 'asof-at', s.as_of),
          fact('Available', fmt.points(s.balance.available), 'asof-available', s.balance.available),
          fact('Pending', fmt.points(s.balance.pending), 'asof-pending', s.balance.pending),
          fact('Balance', fmt.points(s.balance.balance), 'asof-balance', s.balance.balance),
          fact('Tier', s.tier.current.name, 'asof-tier', s.tier.current.name),
          fact('Events replayed', fmt.points(s.events_applied), 'asof-events', s.events_applied)));
      } catch (err) {
        out.dataset.asOf = at;
        out.replaceChildren(problem(err));
      }
    });
    view.append(h('section', { class: 'card', 'aria-labelledby': 'as-of-title' },
      h('h3', { id: 'as-of-title' }, 'As of a date'),
      h('p', { class: 'intro' }, `Replayed from the log up to the end of the day (${locale.timeZone}).`),
      asOfForm, out));
  }
}

// ------------------------------------------------------------------ the event log

const EVENT_TYPES = [
  'Enrolled', 'PurchaseRecorded', 'RefundRecorded', 'PointsRedeemed', 'RedemptionCancelled',
  'PointsExpired', 'TierChanged', 'ActivityRewarded', 'ActivityRefused', 'PointsAdjusted',
  'GoodwillGranted', 'ReferralQualified', 'ReferralBonusCredited', 'ReferralRevoked',
  'ReferralBonusRevoked', 'MemberSuspended', 'MemberReinstated', 'AccountClosed',
  'WinBackAwarded', 'BalanceOpened', 'ExpiryNotified',
];

/** The business time of a log entry (its `occurred_at`), else when it was recorded. */
function entryTime(e) {
  return (e.data && typeof e.data === 'object' && e.data.occurred_at)
    || (e.metadata && typeof e.metadata === 'object' && e.metadata.recorded_at) || null;
}

export async function log(view, caps, arg) {
  view.append(...heading('Event log',
    'The log itself, in position order (GET /v1/log), or one member\'s events '
    + '(GET /v1/members/{id}/events). The API pages by position; the type and date filters '
    + 'are applied here, to the events read page after page.'));
  const params = new URLSearchParams(arg || '');
  const field = (id, label, input) => h('div', { class: 'field' }, h('label', { htmlFor: id }, label), input);
  const memberInput = h('input', { id: 'log-member', type: 'text', autocomplete: 'off', value: params.get('member') || '' });
  const typeInput = h('select', { id: 'log-type' }, h('option', { value: '' }, 'Any'),
    EVENT_TYPES.map((t) => h('option', { value: t, selected: params.get('type') === t }, t)));
  const fromInput = h('input', { id: 'log-from', type: 'date', value: params.get('from') || '' });
  const toInput = h('input', { id: 'log-to', type: 'date', value: params.get('to') || '' });
  const sizeInput = h('select', { id: 'log-size' }, ['20', '50', '100'].map((n) => h('option', { value: n, selected: (params.get('size') || '20') === n }, n)));
  const form = h('form', { class: 'filters', testid: 'log-filters' },
    field('log-member', 'Member id', memberInput), field('log-type', 'Event type', typeInput),
    field('log-from', 'Business date from', fromInput), field('log-to', 'Business date to (inclusive)', toInput),
    field('log-size', 'Rows per page', sizeInput), h('button', { type: 'submit' }, 'Apply'));
  const results = h('div', { testid: 'log-results' });
  const next = h('button', { type: 'button', testid: 'log-next', disabled: true }, 'Next page');
  const status = h('p', { testid: 'log-status', role: 'status' });
  view.append(form, status, results, next);

  const day = (value, plus = 0) => {
    if (!value) return null;
    const [y, m, d] = value.split('-').map(Number);
    return zonedMidnight(y, m - 1, d + plus);
  };
  const filter = {
    member: memberInput.value.trim(), type: typeInput.value,
    from: day(fromInput.value), to: day(toInput.value, 1), size: Number(sizeInput.value),
  };
  let cursor = filter.member ? 0 : null;
  let pageNo = 0;

  const matches = (e) => {
    if (filter.type && e.event_type !== filter.type) return false;
    if (filter.from || filter.to) {
      const at = entryTime(e);
      if (!at) return false;
      const t = new Date(at);
      if (filter.from && t < filter.from) return false;
      if (filter.to && t >= filter.to) return false;
    }
    return true;
  };

  async function load() {
    next.disabled = true;
    status.textContent = 'Reading the log…';
    const rows = [];
    let scanned = 0;
    let end = false;
    // At most 20 pages of the API read per page shown, so a rare filter cannot stall the page.
    for (let read = 0; read < 20 && rows.length < filter.size; read += 1) {
      const page = filter.member
        ? await get(`/v1/members/${encodeURIComponent(filter.member)}/events?limit=100&from_revision=${cursor}`)
        : await get(`/v1/log?limit=100${cursor ? `&after=${encodeURIComponent(cursor)}` : ''}`);
      let stopped = false;
      for (const e of page.entries) {
        scanned += 1;
        cursor = filter.member ? e.revision + 1 : e.position;
        if (matches(e)) rows.push(e);
        if (rows.length >= filter.size) {
          stopped = true;
          break;
        }
      }
      const more = filter.member ? page.next_revision : page.next_after;
      if (!stopped && (more === null || more === undefined)) {
        end = true;
        break;
      }
    }
    pageNo += 1;
    const tableEl = table(`Events, page ${pageNo}`, ['Position', 'Stream', 'Type', 'Business time', 'Recorded', 'Actor'],
      rows.map((e) => h('tr', { testid: 'log-row', 'data-position': e.position, 'data-type': e.event_type },
        h('th', { scope: 'row' }, e.position),
        td(e.stream, { cls: 'wrap' }),
        td(e.event_type, { testid: 'log-type' }),
        td(fmt.dateTime(entryTime(e))),
        td(fmt.dateTime(e.metadata && e.metadata.recorded_at)),
        td((e.metadata && e.metadata.actor) || '–', { cls: 'wrap' }))), { testid: 'log-table' });
    results.replaceChildren(tableEl);
    status.textContent = `${rows.length} events shown, ${scanned} read${end ? '; the end of the log.' : '.'}`;
    next.disabled = end;
    results.dataset.page = String(pageNo);
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const q = new URLSearchParams();
    if (memberInput.value.trim()) q.set('member', memberInput.value.trim());
    if (typeInput.value) q.set('type', typeInput.value);
    if (fromInput.value) q.set('from', fromInput.value);
    if (toInput.value) q.set('to', toInput.value);
    q.set('size', sizeInput.value);
    const hash = `log/${q.toString()}`;
    if (location.hash === `#${hash}`) window.dispatchEvent(new HashChangeEvent('hashchange'));
    else location.hash = hash;
  });
  next.addEventListener('click', () => {
    load().catch((err) => results.replaceChildren(problem(err)));
  });
  await load();
}
