// outbox collect: live events. Takes over the server-rendered page and keeps
// it current from the Server-Sent Events at /events. Every value shown is
// the client's data: it goes in with textContent (or an SVG attribute set to
// a number), never as markup.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const rowsEl = $('rows');
  const filterEl = $('filter');
  const stateEl = $('state');
  const shownEl = $('shown');
  const capacity = parseInt(body.dataset.capacity, 10) || 1000;
  const FIELDS = ['received', 'type', 'event', 'userId', 'messageId', 'properties'];
  let events = []; // newest first
  let filter = filterEl.value.trim().toLowerCase();

  function matches(e) {
    return !filter || FIELDS.some((f) => String(e[f] || '').toLowerCase().includes(filter));
  }

  function rowFor(e, fresh) {
    const tr = document.createElement('tr');
    if (fresh) tr.className = 'new';
    for (const f of FIELDS) {
      const td = document.createElement('td');
      td.textContent = String(e[f] || '');
      tr.appendChild(td);
    }
    return tr;
  }

  function showCount() {
    const n = rowsEl.childElementCount;
    shownEl.textContent = filter
      ? n + ' of the last ' + events.length + ' events match'
      : 'the last ' + events.length + ' events (at most ' + capacity + ' kept), newest first';
  }

  function renderAll() {
    const frag = document.createDocumentFragment();
    for (const e of events) if (matches(e)) frag.appendChild(rowFor(e, false));
    rowsEl.replaceChildren(frag);
    rowsEl.dataset.renderedBy = 'script';
    showCount();
  }

  function add(list) {
    // `list` is oldest first: each goes on top in turn.
    for (const e of list) {
      events.unshift(e);
      if (matches(e)) rowsEl.insertBefore(rowFor(e, true), rowsEl.firstChild);
    }
    // The oldest beyond the capacity go, from the table's end too.
    for (const e of events.splice(capacity)) {
      if (matches(e) && rowsEl.lastChild) rowsEl.removeChild(rowsEl.lastChild);
    }
    showCount();
  }

  function cells(tr, values) {
    for (const v of values) {
      const td = document.createElement('td');
      td.textContent = String(v);
      tr.appendChild(td);
    }
  }

  function setCounters(c) {
    $('accepted').textContent = c.accepted;
    $('duplicates').textContent = c.duplicates;
    $('rejected').textContent = c.rejectedTotal;
    $('faults').textContent = c.faultsTotal;
    const rej = document.createDocumentFragment();
    for (const r of c.rejected) {
      const tr = document.createElement('tr');
      cells(tr, [r.status, r.reason, r.count]);
      rej.appendChild(tr);
    }
    $('rejections').replaceChildren(rej);
    const faults = document.createDocumentFragment();
    const line = (what, n) => {
      const tr = document.createElement('tr');
      cells(tr, [what, n]);
      faults.appendChild(tr);
    };
    for (const f of c.faults.failures) line('answered ' + f.status, f.count);
    if (c.faults.droppedResponses) line('committed, answer dropped', c.faults.droppedResponses);
    if (c.faults.refused) line('connections refused', c.faults.refused);
    $('fault-list').replaceChildren(faults);
  }

  const SVG = 'http://www.w3.org/2000/svg';
  function drawChart(chart) {
    const counts = chart.counts;
    const peak = Math.max(1, ...counts);
    const svg = $('chart');
    const frag = document.createDocumentFragment();
    counts.forEach((n, i) => {
      if (!n) return;
      const h = Math.max(1, (n / peak) * 58);
      const r = document.createElementNS(SVG, 'rect');
      r.setAttribute('x', String(i));
      r.setAttribute('y', String(60 - h));
      r.setAttribute('width', '1');
      r.setAttribute('height', String(h));
      frag.appendChild(r);
    });
    svg.setAttribute('viewBox', '0 0 ' + counts.length + ' 60');
    svg.replaceChildren(frag);
    $('peak').textContent = '(peak ' + Math.max(0, ...counts) + '/s)';
  }

  function setState(text, cls) {
    stateEl.textContent = text;
    stateEl.className = 'state ' + cls;
    body.dataset.state = cls;
  }

  filterEl.addEventListener('input', () => {
    filter = filterEl.value.trim().toLowerCase();
    renderAll();
  });
  filterEl.form.addEventListener('submit', (ev) => ev.preventDefault());

  const source = new EventSource('/events');
  source.addEventListener('hello', (m) => {
    const d = JSON.parse(m.data);
    events = d.events;
    renderAll();
    setCounters(d.counters);
    drawChart(d.chart);
    setState('live', 'live');
  });
  source.addEventListener('batch', (m) => {
    const d = JSON.parse(m.data);
    add(d.events);
    setCounters(d.counters);
  });
  source.addEventListener('stats', (m) => setCounters(JSON.parse(m.data).counters));
  source.addEventListener('tick', (m) => {
    const d = JSON.parse(m.data);
    setCounters(d.counters);
    drawChart(d.chart);
  });
  source.onerror = () => setState('reconnecting…', 'down');
})();
