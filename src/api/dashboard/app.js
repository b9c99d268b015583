// tend's dashboard: a client of tend's JSON/SSE API (docs/dashboard.md), hand-written, no
// framework, no build step. Nodes are made with createElement and textContent only, so no
// text from the API (log lines, reasons, names) is ever parsed as HTML.

const $ = (id) => document.getElementById(id);

/** An element with attributes (`on*` are listeners, `text` the text) and children. */
function h(tag, props, ...children) {
  return fill(document.createElement(tag), props, children);
}

/** The same for SVG. */
function svg(tag, props, ...children) {
  return fill(document.createElementNS('http://www.w3.org/2000/svg', tag), props, children);
}

function fill(el, props, children) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'text') el.textContent = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const fmt = {
  bytes(n) {
    if (n === null || n === undefined) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${i && n < 10 ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
  },
  percent(p) {
    if (p === null || p === undefined) return '–';
    return `${p < 10 ? p.toFixed(1) : Math.round(p)}%`;
  },
  duration(ms) {
    if (ms === null || ms === undefined) return '–';
    let s = Math.floor(ms / 1000);
    const d = Math.floor(s / 86400); s %= 86400;
    const hr = Math.floor(s / 3600); s %= 3600;
    const m = Math.floor(s / 60); s %= 60;
    if (d) return `${d}d ${hr}h`;
    if (hr) return `${hr}h ${m}m`;
    if (m) return `${m}m ${s}s`;
    return `${s}s`;
  },
  clock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour12: false });
  },
  when(ms) {
    const d = new Date(ms);
    const day = d.toLocaleDateString([], { month: 'short', day: 'numeric' });
    return `${day} ${d.toLocaleTimeString([], { hour12: false })}`;
  },
};

/** A state's tone: the badge's colour, always beside the state's name. */
function tone(state, exitCode) {
  switch (state) {
    case 'running': return 'ok';
    case 'starting': case 'waiting': case 'stopping': return 'warn';
    case 'backoff': case 'fatal': return 'bad';
    case 'exited': return exitCode === 0 ? 'idle' : 'bad';
    default: return 'idle';
  }
}

function badge(state, exitCode) {
  return h('span', { class: `badge ${tone(state, exitCode)}`, 'data-field': 'state' }, state);
}

// ---- the API ---------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

const app = {
  session: null, // GET /api/v1/session
  info: null,
  services: [],
  events: null, // EventSource of /api/v1/events/stream
  logs: null, // EventSource of the service page's logs
  timers: [],
  refreshing: null,
  refreshAgain: false,
  page: null, // { view: 'overview' } or { view: 'service', name }
  busy: new Set(), // actions under way ('restart web'): their buttons stay disabled
};

async function api(path, { method = 'GET', body, quiet } = {}) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  // A session's actions carry its CSRF token: the cookie alone proves nothing, since the
  // browser would send it with another site's request too.
  if (method !== 'GET' && app.session && app.session.csrf_token) {
    headers['X-CSRF-Token'] = app.session.csrf_token;
  }
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (e) {
    setLive(false);
    throw new ApiError(0, 'tend does not answer');
  }
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (!res.ok) {
    const message = (data && data.error) || `${res.status} ${res.statusText}`;
    if (res.status === 401 && !quiet && app.session) ended();
    throw new ApiError(res.status, message, Number(res.headers.get('Retry-After')) || 0);
  }
  return data;
}

// ---- notices ---------------------------------------------------------------------------

let noticeTimer = null;
function notice(text, kind = 'ok') {
  const el = $('notice');
  el.className = `notice ${kind}`;
  el.textContent = text;
  clearTimeout(noticeTimer);
  if (kind === 'ok') noticeTimer = setTimeout(() => { el.textContent = ''; }, 8000);
}

function setLive(on) {
  const el = $('live');
  el.className = `live ${on ? 'on' : 'off'}`;
  el.textContent = on ? 'live' : 'reconnecting…';
}

// ---- login -------------------------------------------------------------------------------

function showOnly(id) {
  for (const section of ['loading', 'login', 'overview', 'service']) {
    $(section).hidden = section !== id;
  }
}

function showLogin(message) {
  stop();
  app.session = null;
  $('who').textContent = '';
  $('logout').hidden = true;
  $('daemon').textContent = '';
  $('live').textContent = '';
  $('live').className = 'live';
  // Nothing of the last session stays in the page, hidden or not.
  for (const id of ['services', 'service-head', 'service-actions', 'service-instances', 'service-probes', 'service-charts', 'log', 'events']) {
    $(id).replaceChildren();
  }
  app.services = [];
  $('notice').textContent = '';
  showOnly('login');
  $('login-error').textContent = message || '';
  $('token').focus();
}

/** The session ended under us (expired, logged out elsewhere, tend restarted). */
function ended() {
  showLogin('Your session has ended: log in again.');
}

async function login(event) {
  event.preventDefault();
  const input = $('token');
  const token = input.value.trim();
  const error = $('login-error');
  if (!token) {
    error.textContent = 'Enter a token.';
    input.focus();
    return;
  }
  const button = event.submitter || $('login-form').querySelector('button');
  button.disabled = true;
  error.textContent = '';
  try {
    app.session = await api('/api/v1/session', { method: 'POST', body: { token }, quiet: true });
    input.value = '';
    await start();
  } catch (e) {
    if (e.status === 401) error.textContent = 'That token is not valid.';
    else if (e.status === 429) error.textContent = `Too many failed attempts: try again in ${e.retryAfter || 'a few'} s.`;
    else error.textContent = e.message;
    input.select();
  } finally {
    button.disabled = false;
  }
}

async function logout() {
  try { await api('/api/v1/session', { method: 'DELETE', quiet: true }); } catch (e) { /* gone anyway */ }
  // The next login starts from the overview (one that follows an expiry comes back here).
  history.replaceState(null, '', location.pathname);
  showLogin('Logged out.');
}

const canAct = () => app.session && app.session.role === 'operate';

// ---- the running page --------------------------------------------------------------------

async function start() {
  stop();
  const s = app.session;
  $('who').textContent = s.via === 'unix' ? `${s.role} (unix socket)` : s.role === 'read' ? 'read-only' : 'operate';
  $('who').title = s.who;
  $('logout').hidden = s.via !== 'session';
  api('/api/v1/info').then((info) => {
    app.info = info;
    $('daemon').textContent = `tend ${info.version} · ${info.manifest}`;
    $('daemon').title = `pid ${info.pid}, state in ${info.state_dir}`;
  }).catch(() => {});
  openEvents();
  // Resource figures change without an event; look again while someone is looking.
  app.timers.push(setInterval(() => { if (!document.hidden) refresh(); }, 5000));
  await refresh();
  route();
}

function stop() {
  if (app.events) app.events.close();
  app.events = null;
  closeLogs();
  for (const t of app.timers) clearInterval(t);
  app.timers = [];
  app.page = null;
}

function openEvents() {
  const source = new EventSource('/api/v1/events/stream');
  app.events = source;
  source.onopen = () => setLive(true);
  source.onerror = () => {
    setLive(false);
    // The browser retries a dropped stream by itself, but not one refused (a 401 once the
    // session is gone): find out which, and start over if the stream is closed for good.
    if (source.readyState === EventSource.CLOSED && app.events === source) {
      app.events = null;
      setTimeout(() => {
        if (!app.session || app.events) return;
        api('/api/v1/session').then(() => openEvents()).catch(() => {});
      }, 3000);
    }
  };
  const kinds = ['state', 'spawn', 'exit', 'ready', 'probe', 'warning', 'reload', 'lagged'];
  for (const kind of kinds) {
    source.addEventListener(kind, (message) => {
      let event = null;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      if (kind !== 'lagged') addEvent(event, true);
      scheduleRefresh();
    });
  }
}

let refreshTimer = null;
/** Many events come in bursts (a restart is four or five): one look after the burst. */
function scheduleRefresh() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => { refreshTimer = null; refresh(); }, 150);
}

async function refresh() {
  if (app.refreshing) { app.refreshAgain = true; return app.refreshing; }
  app.refreshing = (async () => {
    try {
      app.services = await api('/api/v1/services');
      setLive(Boolean(app.events && app.events.readyState === EventSource.OPEN));
      render();
    } catch (e) {
      if (e.status !== 401) setLive(false);
    } finally {
      app.refreshing = null;
      if (app.refreshAgain) { app.refreshAgain = false; scheduleRefresh(); }
    }
  })();
  return app.refreshing;
}

// ---- routes ------------------------------------------------------------------------------

function route() {
  if (!app.session) return;
  const hash = decodeURIComponent(location.hash.replace(/^#\/?/, ''));
  const previous = app.page;
  if (hash.startsWith('service/')) {
    app.page = { view: 'service', name: hash.slice('service/'.length) };
  } else {
    app.page = { view: 'overview' };
  }
  const moved = !previous || previous.view !== app.page.view || previous.name !== app.page.name;
  if (moved) {
    closeLogs();
    if (app.page.view === 'service') openService(app.page.name);
  }
  render();
  if (moved && previous) $(app.page.view === 'service' ? 'service-title' : 'overview-title').focus();
}

function render() {
  if (!app.session || !app.page) return;
  if (app.page.view === 'service') {
    showOnly('service');
    renderService();
  } else {
    showOnly('overview');
    renderOverview();
  }
}

// ---- actions -----------------------------------------------------------------------------

const ACTIONS = [
  ['start', 'Start'],
  ['stop', 'Stop'],
  ['restart', 'Restart'],
  ['reload', 'Reload'],
];

/** The buttons that act on a target, or nothing for a `read` session. They carry what
 * they do in data attributes, read at the click (one listener for the page), so that a
 * region updated in place can never leave a button acting on another target. */
function actionButtons(target) {
  if (!canAct()) return null;
  return h('div', { class: 'actions', role: 'group', 'aria-label': `Actions on ${target}` },
    ACTIONS.map(([action, label]) => h('button', {
      type: 'button',
      class: action === 'stop' ? 'danger' : null,
      'data-action': action,
      'data-target': target,
      'aria-label': `${label} ${target}`,
      disabled: app.busy.has(`${action} ${target}`),
    }, label)));
}

async function busy(key, work) {
  app.busy.add(key);
  render();
  try {
    await work();
  } finally {
    app.busy.delete(key);
    render();
    refresh();
  }
}

function act(target, action) {
  const key = `${action} ${target}`;
  if (app.busy.has(key)) return;
  notice(`${action} ${target}…`, 'ok');
  busy(key, async () => {
    try {
      const answer = await api(`/api/v1/services/${encodeURIComponent(target)}/${action}`, { method: 'POST' });
      const failed = answer.results.filter((r) => !r.ok);
      if (failed.length) {
        notice(`${action} ${target}: ${failed.map((f) => `${f.instance}: ${f.error}`).join('; ')}`, 'bad');
      } else {
        const n = answer.results.length;
        notice(`${action} ${target}: done (${n} instance${n === 1 ? '' : 's'})`, 'ok');
      }
    } catch (e) {
      if (e.status !== 401) notice(`${action} ${target}: ${e.message}`, 'bad');
    }
  });
}

function scaleForm(service) {
  if (!canAct()) return null;
  const id = `scale-${service.name}`;
  const autoscaled = Boolean(service.autoscale);
  const running = app.busy.has(`scale ${service.name}`);
  return h('form', { class: 'scale', 'data-service': service.name },
    h('label', { for: id }, 'Instances'),
    h('input', {
      id, type: 'number', min: 1, max: 10000, value: service.count, required: true, inputmode: 'numeric', disabled: autoscaled,
    }),
    h('button', { type: 'submit', disabled: autoscaled || running, 'aria-label': `Scale ${service.name}` }, 'Scale'),
    autoscaled ? h('span', { class: 'muted' }, 'autoscaled') : null);
}

function scale(form) {
  const name = form.dataset.service;
  const input = form.querySelector('input');
  const instances = Number(input.value);
  if (!Number.isInteger(instances) || instances < 1 || instances > 10000) {
    notice('The number of instances is a whole number from 1 to 10000.', 'bad');
    input.focus();
    return;
  }
  const key = `scale ${name}`;
  if (app.busy.has(key)) return;
  notice(`scale ${name} to ${instances}…`, 'ok');
  busy(key, async () => {
    try {
      const answer = await api('/api/v1/actions/scale', { method: 'POST', body: { service: name, instances } });
      notice(`scale ${name}: ${answer.from} → ${answer.to}${answer.ok ? '' : ' (some did not start)'}`, answer.ok ? 'ok' : 'bad');
    } catch (e) {
      if (e.status !== 401) notice(`scale ${name}: ${e.message}`, 'bad');
    }
  });
}

// ---- the overview ------------------------------------------------------------------------

function sum(values) {
  const present = values.filter((v) => v !== null && v !== undefined);
  return present.length ? present.reduce((a, b) => a + b, 0) : null;
}

/** A cell with its column's name, which a phone's layout shows beside the value. */
function cell(label, content, props = {}) {
  const empty = content === '' || content === null || content === undefined;
  return h('td', { 'data-label': label, ...props }, empty ? null : h('span', {}, content));
}

function renderOverview() {
  document.title = 'tend';
  const services = app.services;
  const instances = services.flatMap((s) => s.instances);
  const running = instances.filter((i) => i.state === 'running').length;
  $('overview-summary').textContent =
    `${services.length} service${services.length === 1 ? '' : 's'}, ${running} of ${instances.length} instance${instances.length === 1 ? '' : 's'} running`;
  const head = h('thead', {}, h('tr', {},
    ['Service', 'State', 'Ready', 'PID', 'CPU', 'Memory', 'Restarts', 'Uptime'].map((t, i) =>
      h('th', { scope: 'col', class: i >= 3 ? 'num' : null }, t)),
    canAct() ? h('th', { scope: 'col' }, 'Actions') : null));
  const bodies = services.map((s) => {
    const single = s.instances.length === 1 ? s.instances[0] : null;
    const up = s.instances.filter((i) => i.state === 'running').length;
    const rows = [h('tr', { 'data-service': s.name },
      h('th', { scope: 'row', class: 'name', 'data-label': 'Service' },
        h('a', { href: `#/service/${encodeURIComponent(s.name)}` }, s.name),
        s.kind === 'task' ? h('span', { class: 'muted' }, ' (task)') : null),
      cell('State', [badge(s.state, single ? single.exit_code : null),
        s.instances.length > 1 ? h('span', { class: 'muted' }, ` ${up}/${s.instances.length}`) : null]),
      cell('Ready', s.ready ? 'yes' : 'no'),
      cell('PID', single && single.pid ? String(single.pid) : '–', { class: 'num', 'data-field': 'pid' }),
      cell('CPU', fmt.percent(sum(s.instances.map((i) => i.cpu_percent))), { class: 'num' }),
      cell('Memory', fmt.bytes(sum(s.instances.map((i) => i.rss_bytes))), { class: 'num' }),
      cell('Restarts', String(sum(s.instances.map((i) => i.restarts)) || 0), { class: 'num', 'data-field': 'restarts' }),
      cell('Uptime', single ? fmt.duration(single.uptime_ms) : '', { class: 'num' }),
      canAct() ? cell('Actions', actionButtons(s.name), { class: 'act' }) : null)];
    if (!single) {
      for (const i of s.instances) {
        rows.push(h('tr', { class: 'instance', 'data-instance': i.name },
          h('th', { scope: 'row', class: 'name', 'data-label': 'Instance' }, i.name),
          cell('State', badge(i.state, i.exit_code)),
          cell('Ready', i.ready ? 'yes' : 'no'),
          cell('PID', i.pid ? String(i.pid) : '–', { class: 'num', 'data-field': 'pid' }),
          cell('CPU', fmt.percent(i.cpu_percent), { class: 'num' }),
          cell('Memory', fmt.bytes(i.rss_bytes), { class: 'num' }),
          cell('Restarts', String(i.restarts), { class: 'num' }),
          cell('Uptime', fmt.duration(i.uptime_ms), { class: 'num' }),
          canAct() ? cell('', '', { class: 'act' }) : null));
      }
    }
    return h('tbody', { class: 'service' }, rows);
  });
  const table = h('table', { class: 'cards overview' },
    h('caption', { class: 'sr-only' }, 'Every service and its instances'), head, bodies);
  update($('services'), table);
}

/** Puts `content` in `container`, updating what is there in place: a button being pressed,
 * the focus, a field being typed in all survive the refreshes that come every few seconds. */
function update(container, content) {
  const current = container.firstElementChild;
  if (container.childNodes.length === 1 && current && current.nodeName === content.nodeName) {
    morph(current, content);
  } else {
    container.replaceChildren(content);
  }
}

function morph(target, source) {
  for (const { name, value } of [...source.attributes]) {
    if (target.getAttribute(name) !== value) target.setAttribute(name, value);
  }
  for (const { name } of [...target.attributes]) {
    if (!source.hasAttribute(name)) target.removeAttribute(name);
  }
  const olds = [...target.childNodes];
  const news = [...source.childNodes];
  news.forEach((node, i) => {
    const old = olds[i];
    if (!old) target.append(node);
    else if (old.nodeType !== node.nodeType || old.nodeName !== node.nodeName) old.replaceWith(node);
    else if (node.nodeType === Node.TEXT_NODE) { if (old.data !== node.data) old.data = node.data; }
    else morph(old, node);
  });
  for (const old of olds.slice(news.length)) old.remove();
}

// ---- a service's page --------------------------------------------------------------------

const servicePage = {
  name: null,
  events: [],
  lines: [],
  logFor: null, // the instances the log stream follows
  samples: new Map(),
  summary: null,
  chartTimer: null,
};

function openService(name) {
  servicePage.name = name;
  servicePage.events = [];
  servicePage.samples = new Map();
  servicePage.summary = null;
  $('events').replaceChildren();
  $('service-charts').replaceChildren();
  $('log-search').value = '';
  openLogs();
  loadEvents(name);
  loadCharts();
  loadSummary(name);
  clearInterval(servicePage.chartTimer);
  // The history keeps a sample every 10 s; look as often.
  servicePage.chartTimer = setInterval(() => { if (!document.hidden) loadCharts(); }, 10000);
  app.timers.push(servicePage.chartTimer);
}

function currentService() {
  return app.services.find((s) => s.name === servicePage.name);
}

function renderService() {
  const s = currentService();
  const title = $('service-title');
  if (!s) {
    title.textContent = servicePage.name;
    $('service-head').replaceChildren(h('p', { class: 'error' }, 'No service of that name.'));
    $('service-actions').replaceChildren();
    $('service-instances').replaceChildren();
    $('service-probes').replaceChildren();
    return;
  }
  title.replaceChildren(s.name, ' ', badge(s.state));
  document.title = `${s.name} · tend`;
  const facts = [
    ['kind', s.kind],
    ['instances', `${s.instances.filter((i) => i.state === 'running').length} running of ${s.count}`],
    ['ready', s.ready ? 'yes' : 'no'],
    ['depends on', s.depends_on.length ? s.depends_on.join(', ') : 'nothing'],
    ['autostart', s.autostart ? 'yes' : 'no'],
  ];
  if (s.autoscale) facts.push(['autoscale', `${s.autoscale.min}–${s.autoscale.max} at ${s.autoscale.cpu_percent}% CPU`]);
  if (s.scaled) facts.push(['scaled', `by ${s.scaled.by} (manifest: ${s.scaled.manifest})`]);
  const summary = servicePage.summary;
  if (summary) {
    facts.push(['uptime 24 h', summary.uptime_percent === null || summary.uptime_percent === undefined ? '–' : `${summary.uptime_percent.toFixed(2)}%`]);
    facts.push(['restarts 24 h', String(summary.restarts)]);
    if (summary.last_failure) facts.push(['last failure', describeFailure(summary.last_failure)]);
  }
  $('service-head').replaceChildren(h('dl', { class: 'facts' },
    facts.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v)))));
  update($('service-actions'), canAct()
    ? h('div', { class: 'actions service-actions' }, actionButtons(s.name), scaleForm(s))
    : h('p', { class: 'muted' }, 'Read-only: this session cannot act.'));
  renderInstances(s);
  renderProbes(s);
  // A stream follows the instances there were when it opened: after a scale, or an apply
  // that renamed them, open it again for the new set.
  const names = s.instances.map((i) => i.name).join(',');
  if (servicePage.logFor !== null && servicePage.logFor !== names) openLogs();
}

function describeFailure(e) {
  return `${fmt.when(e.at_ms)}, ${e.instance}: ${describe(e)}`;
}

function lastExit(i) {
  if (i.exit_signal) return i.exit_signal;
  if (i.exit_code !== null && i.exit_code !== undefined) return `code ${i.exit_code}`;
  return '–';
}

function renderInstances(s) {
  const head = h('thead', {}, h('tr', {},
    ['Instance', 'State', 'Ready', 'Health', 'PID', 'CPU', 'Memory', 'Restarts', 'Uptime', 'Last exit', 'Why'].map((t, i) =>
      h('th', { scope: 'col', class: i >= 4 && i <= 8 ? 'num' : null }, t)),
    canAct() ? h('th', { scope: 'col' }, 'Actions') : null));
  const rows = s.instances.map((i) => h('tr', { 'data-instance': i.name },
    h('th', { scope: 'row', class: 'name', 'data-label': 'Instance' }, i.name),
    cell('State', badge(i.state, i.exit_code)),
    cell('Ready', i.ready ? 'yes' : 'no'),
    cell('Health', i.health),
    cell('PID', i.pid ? String(i.pid) + (i.replacement_pid ? ` → ${i.replacement_pid}` : '') : '–', { class: 'num', 'data-field': 'pid' }),
    cell('CPU', fmt.percent(i.cpu_percent), { class: 'num' }),
    cell('Memory', fmt.bytes(i.rss_bytes), { class: 'num' }),
    cell('Restarts', String(i.restarts), { class: 'num', 'data-field': 'restarts' }),
    cell('Uptime', fmt.duration(i.uptime_ms), { class: 'num' }),
    cell('Last exit', lastExit(i)),
    cell('Why', [i.reason, i.warning ? ` (${i.warning})` : '', i.status_text ? ` “${i.status_text}”` : ''].join(''), { class: 'reason' }),
    canAct() && s.instances.length > 1 ? cell('Actions', actionButtons(i.name), { class: 'act' })
      : canAct() ? cell('', '', { class: 'act' }) : null));
  update($('service-instances'), h('table', { class: 'cards instances' },
    h('caption', { class: 'sr-only' }, `Instances of ${s.name}`), head, h('tbody', { class: 'service' }, rows)));
}

function renderProbes(s) {
  const rows = [];
  for (const i of s.instances) {
    for (const p of i.probes || []) {
      const verdict = p.passing === null || p.passing === undefined ? 'undecided' : p.passing ? 'passing' : 'failing';
      rows.push(h('tr', {},
        h('th', { scope: 'row', 'data-label': 'Instance' }, i.name),
        cell('Probe', `${p.role} (${p.kind})`),
        cell('Verdict', h('span', { class: `badge ${p.passing ? 'ok' : p.passing === false ? 'bad' : 'idle'}` }, verdict)),
        cell('Last check', p.at_ms ? `${fmt.clock(p.at_ms)}${p.took_ms !== null && p.took_ms !== undefined ? `, ${p.took_ms.toFixed(1)} ms` : ''}` : '–'),
        cell('Detail', p.detail + (p.fallback ? ' (fallback)' : ''), { class: 'detail' })));
    }
  }
  if (!rows.length) {
    $('service-probes').replaceChildren(h('p', { class: 'muted' }, 'No probes: ready once up for min_uptime.'));
    return;
  }
  $('service-probes').replaceChildren(h('table', { class: 'cards probes' },
    h('caption', { class: 'sr-only' }, `Probes of ${s.name}`),
    h('thead', {}, h('tr', {}, ['Instance', 'Probe', 'Verdict', 'Last check', 'Detail'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows)));
}

// ---- the summary, the charts -------------------------------------------------------------

async function loadSummary(name) {
  try {
    const report = await api('/api/v1/summary?window=24h', { quiet: true });
    if (servicePage.name !== name) return;
    servicePage.summary = (report.services || []).find((s) => s.service === name) || null;
    render();
  } catch (e) { /* no history: no summary */ }
}

async function loadCharts() {
  const name = servicePage.name;
  const s = currentService();
  if (!s) return;
  const since = $('chart-window').value;
  const series = await Promise.all(s.instances.map(async (i) => {
    try {
      const rows = await api(`/api/v1/samples?instance=${encodeURIComponent(i.name)}&since=${since}`, { quiet: true });
      return { name: i.name, rows };
    } catch (e) {
      return { name: i.name, rows: [], error: e };
    }
  }));
  if (servicePage.name !== name) return;
  const off = series.find((x) => x.error && x.error.status === 404);
  if (off) {
    $('service-charts').replaceChildren(h('p', { class: 'muted' }, 'No charts: the history is off.'));
    return;
  }
  const to = Date.now();
  const from = to - windowMs(since);
  $('service-charts').replaceChildren(
    chart('CPU', '% of one core', series, 'cpu_percent', fmt.percent, from, to),
    chart('Memory', 'resident', series, 'rss_bytes', fmt.bytes, from, to));
}

function windowMs(text) {
  const n = parseFloat(text);
  const unit = text.replace(/[0-9.]/g, '');
  return n * ({ m: 60e3, h: 3600e3, d: 86400e3 }[unit] || 1000);
}

/** A line chart in SVG, one line per instance, with its figures in words for screen readers. */
function chart(title, unit, series, field, format, from, to) {
  const W = 600; const H = 200; const L = 56; const R = 8; const T = 10; const B = 24;
  let max = 0;
  let count = 0;
  for (const s of series) {
    for (const r of s.rows) {
      if (r[field] !== null && r[field] !== undefined) { max = Math.max(max, r[field]); count += 1; }
    }
  }
  const top = niceMax(max, field === 'cpu_percent' ? 1 : 1024 * 1024);
  const x = (t) => L + ((t - from) / (to - from)) * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  const parts = [];
  for (const f of [0, 0.5, 1]) {
    const yy = y(top * f);
    parts.push(svg('line', { class: 'grid', x1: L, x2: W - R, y1: yy, y2: yy }));
    parts.push(svg('text', { x: L - 6, y: yy + 4, 'text-anchor': 'end' }, format(top * f)));
  }
  parts.push(svg('text', { x: L, y: H - 6 }, fmt.when(from)));
  parts.push(svg('text', { x: W - R, y: H - 6, 'text-anchor': 'end' }, 'now'));
  const described = [];
  series.forEach((s, n) => {
    const points = s.rows
      .filter((r) => r[field] !== null && r[field] !== undefined && r.at_ms >= from)
      .map((r) => `${x(r.at_ms).toFixed(1)},${y(r[field]).toFixed(1)}`);
    if (points.length === 1) points.push(points[0].replace(/^[^,]+/, (v) => String(Number(v) + 2)));
    if (points.length) parts.push(svg('polyline', { class: `s${n % 6}`, points: points.join(' ') }));
    const values = s.rows.map((r) => r[field]).filter((v) => v !== null && v !== undefined);
    if (values.length) {
      described.push(`${s.name}: now ${format(values[values.length - 1])}, at most ${format(Math.max(...values))}`);
    }
  });
  const label = count
    ? `${title} (${unit}) over the window. ${described.join('; ')}.`
    : `${title}: no samples in this window yet (one every 10 s while an instance runs).`;
  return h('figure', { 'data-chart': field },
    h('figcaption', {}, `${title} `, h('span', { class: 'muted' }, `(${unit})`)),
    svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label }, parts),
    h('ul', { class: 'legend' }, series.map((s, n) => h('li', { class: `s${n % 6}` }, h('span', {}, s.name)))),
    count ? null : h('p', { class: 'muted' }, 'No samples in this window yet.'));
}

/** A round upper bound for an axis: 1, 2 or 5 times a power of ten (of `unit`). */
function niceMax(max, unit) {
  if (!(max > 0)) return unit;
  const base = field10(max);
  for (const m of [1, 2, 5, 10]) if (max <= m * base) return m * base;
  return 10 * base;
}

function field10(v) {
  return 10 ** Math.floor(Math.log10(v));
}

// ---- logs --------------------------------------------------------------------------------

const MAX_LINES = 2000;

function closeLogs() {
  if (app.logs) app.logs.close();
  app.logs = null;
}

function openLogs() {
  closeLogs();
  const name = servicePage.name;
  const s = currentService();
  servicePage.logFor = s ? s.instances.map((i) => i.name).join(',') : null;
  servicePage.lines = [];
  $('log').replaceChildren();
  updateLogCount();
  const stream = $('log-stream').value;
  const query = new URLSearchParams({ targets: name, lines: '200' });
  if (stream !== 'all') query.set('stream', stream);
  const source = new EventSource(`/api/v1/logs/stream?${query}`);
  app.logs = source;
  const pending = [];
  let flush = null;
  source.addEventListener('log', (message) => {
    try { pending.push(JSON.parse(message.data)); } catch (e) { return; }
    // Lines come hundreds at a time (the tail, a chatty service): one layout per frame.
    if (!flush) {
      flush = requestAnimationFrame(() => {
        flush = null;
        appendLines(pending.splice(0));
      });
    }
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED && app.logs === source) {
      setTimeout(() => { if (app.logs === source && servicePage.name === name) openLogs(); }, 3000);
    }
  };
}

function appendLines(entries) {
  const log = $('log');
  const needle = $('log-search').value.toLowerCase();
  const nodes = entries.map((e) => {
    const node = logLine(e, needle);
    servicePage.lines.push({ entry: e, node });
    return node;
  });
  log.append(...nodes);
  const extra = servicePage.lines.length - MAX_LINES;
  if (extra > 0) {
    for (const old of servicePage.lines.splice(0, extra)) old.node.remove();
  }
  updateLogCount();
  if ($('log-follow').checked) log.scrollTop = log.scrollHeight;
}

function logLine(e, needle) {
  const time = e.time.length >= 23 ? e.time.slice(11, 23) : e.time;
  const node = h('span', { class: `line ${e.stream === 'stderr' ? 'err' : 'out'}`, 'data-stream': e.stream },
    h('span', { class: 't' }, time),
    h('span', { class: 'i' }, e.instance),
    h('span', { class: 'x' }, highlight(e.line, needle)),
    '\n');
  node.hidden = Boolean(needle) && !e.line.toLowerCase().includes(needle);
  return node;
}

/** The line's text with each match of the search in a <mark>. */
function highlight(text, needle) {
  if (!needle) return text;
  const parts = [];
  const lower = text.toLowerCase();
  let at = 0;
  for (;;) {
    const found = lower.indexOf(needle, at);
    if (found < 0) break;
    parts.push(text.slice(at, found), h('mark', {}, text.slice(found, found + needle.length)));
    at = found + needle.length;
  }
  parts.push(text.slice(at));
  return parts;
}

function searchLogs() {
  const needle = $('log-search').value.toLowerCase();
  for (const line of servicePage.lines) {
    const fresh = logLine(line.entry, needle);
    line.node.replaceWith(fresh);
    line.node = fresh;
  }
  updateLogCount();
  const log = $('log');
  if ($('log-follow').checked) log.scrollTop = log.scrollHeight;
}

function updateLogCount() {
  const total = servicePage.lines.length;
  const needle = $('log-search').value;
  const shown = needle ? servicePage.lines.filter((l) => !l.node.hidden).length : total;
  $('log-count').textContent = needle ? `${shown} of ${total} lines match` : `${total} line${total === 1 ? '' : 's'}`;
}

// ---- the event timeline ------------------------------------------------------------------

async function loadEvents(name) {
  try {
    const rows = await api(`/api/v1/events?service=${encodeURIComponent(name)}&limit=200`, { quiet: true });
    if (servicePage.name !== name) return;
    // Live events may have come first; keep one of each.
    const seen = new Set(servicePage.events.map(eventKey));
    for (const row of rows) if (!seen.has(eventKey(row))) servicePage.events.push(row);
    servicePage.events.sort((a, b) => a.at_ms - b.at_ms);
    renderEvents();
  } catch (e) {
    if (e.status === 404) $('events').replaceChildren(h('li', { class: 'muted' }, 'The history is off: live events only.'));
  }
}

function eventKey(e) {
  return [e.at_ms, e.instance, e.kind, e.to_state, e.pid, e.probe].join('|');
}

function addEvent(event, live) {
  if (!app.page || app.page.view !== 'service' || event.service !== servicePage.name) return;
  servicePage.events.push(event);
  if (servicePage.events.length > 500) servicePage.events.splice(0, servicePage.events.length - 500);
  if (live) renderEvents();
}

function describe(e) {
  switch (e.kind) {
    case 'state': return `${e.from_state || '?'} → ${e.to_state}${e.reason ? `: ${e.reason}` : ''}`;
    case 'spawn': return `started, pid ${e.pid}`;
    case 'exit': return e.signal ? `pid ${e.pid} ended by ${e.signal}` : `pid ${e.pid} exited with code ${e.exit_code}`;
    case 'ready': return 'up for min_uptime: the start worked';
    case 'probe': return `${e.probe} probe ${e.passing ? 'passes' : 'fails'}${e.reason ? `: ${e.reason}` : ''}`;
    case 'reload': return `reload ${e.to_state}${e.pid ? ` (pid ${e.pid})` : ''}${e.reason ? `: ${e.reason}` : ''}`;
    default: return e.reason || e.kind;
  }
}

function eventTone(e) {
  if (e.kind === 'state') return tone(e.to_state);
  // A stop's signal is how a stop ends; any other signal, or a code but 0, is a failure.
  if (e.kind === 'exit') return e.exit_code === 0 || ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT'].includes(e.signal) ? 'idle' : 'bad';
  if (e.kind === 'probe') return e.passing ? 'ok' : 'bad';
  if (e.kind === 'warning') return 'warn';
  if (e.kind === 'reload' && e.to_state === 'failed') return 'bad';
  return 'idle';
}

function renderEvents() {
  const items = servicePage.events.slice().reverse().slice(0, 200).map((e) => h('li', { 'data-kind': e.kind },
    h('time', { datetime: new Date(e.at_ms).toISOString() }, fmt.when(e.at_ms)),
    h('span', {}, e.instance),
    h('span', {}, h('span', { class: `badge ${eventTone(e)}` }, e.kind)),
    h('span', { class: 'what' }, describe(e))));
  $('events').replaceChildren(...(items.length ? items : [h('li', { class: 'muted' }, 'No events yet.')]));
}

// ---- start -------------------------------------------------------------------------------

async function boot() {
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  window.addEventListener('hashchange', route);
  $('log-stream').addEventListener('change', () => openLogs());
  let searchTimer = null;
  $('log-search').addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(searchLogs, 150);
  });
  $('log-follow').addEventListener('change', (e) => {
    if (e.currentTarget.checked) $('log').scrollTop = $('log').scrollHeight;
  });
  $('chart-window').addEventListener('change', () => loadCharts());
  document.addEventListener('click', (e) => {
    const button = e.target.closest('button[data-action][data-target]');
    if (button && !button.disabled) act(button.dataset.target, button.dataset.action);
  });
  document.addEventListener('submit', (e) => {
    const form = e.target.closest('form.scale');
    if (!form) return;
    e.preventDefault();
    scale(form);
  });
  document.addEventListener('visibilitychange', () => { if (!document.hidden && app.session) refresh(); });
  try {
    app.session = await api('/api/v1/session', { quiet: true });
  } catch (e) {
    if (e.status === 401) { showLogin(''); return; }
    showOnly('loading');
    $('loading').textContent = `tend does not answer: ${e.message}. Reload the page to try again.`;
    return;
  }
  await start();
}

boot();
