/* django-resilience admin: the outcome charts of the policy change page.
 *
 * Draws the buckets of the last hour or day (calls, failure rate, latency percentiles,
 * rejections) as SVG, marks the state changes, keeps the bucket table in step, and polls the
 * admin's JSON view every few seconds while the tab is visible. No inline script or style: the
 * data comes from <script type="application/json"> blocks and the JSON view; colours and fonts
 * come from charts.css (the admin's CSS variables, so light and dark themes both work).
 */
'use strict';
{
    const SVG = 'http://www.w3.org/2000/svg';
    const HEIGHT = 170;
    const MARGIN = {top: 10, right: 14, bottom: 24, left: 62};
    const MINUTE = 60000;
    // Time-axis steps in minutes; the first that leaves ~90 px between labels is used.
    const TIME_STEPS = [1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720];
    const NOT_CLOSED = ['open', 'half_open', 'forced_open', 'unknown'];

    function node(name, attrs, parent, text) {
        const el = document.createElementNS(SVG, name);
        for (const [key, value] of Object.entries(attrs || {})) {
            el.setAttribute(key, value);
        }
        if (text !== undefined) {
            el.textContent = text;
        }
        if (parent) {
            parent.appendChild(el);
        }
        return el;
    }

    function format(template, values) {
        return template.replace(/%\((\w+)\)s/g, (match, key) => values[key]);
    }

    // 0 and a few round steps up to at least `max` ("nice" numbers: 1, 2, 2.5, 5 x 10^n).
    function ticks(max, count, integer) {
        if (!(max > 0)) {
            return [0, integer ? 1 : 1];
        }
        const rough = max / count;
        const power = Math.pow(10, Math.floor(Math.log10(rough)));
        let step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= rough);
        if (integer) {
            step = Math.max(1, Math.round(step));
        }
        const result = [];
        for (let value = 0; value < max + step * 0.999; value += step) {
            result.push(Number(value.toPrecision(12)));
        }
        return result;
    }

    class Chart {
        constructor(section) {
            this.section = section;
            this.url = section.dataset.url;
            this.range = section.dataset.range;
            this.poll = Number(section.dataset.poll || 5) * 1000;
            this.text = JSON.parse(document.getElementById(section.dataset.text).textContent);
            this.data = JSON.parse(document.getElementById(section.dataset.source).textContent);
            this.lang = document.documentElement.lang || undefined;
            this.number = new Intl.NumberFormat(this.lang, {maximumFractionDigits: 1});
            this.charts = section.querySelector('.rs-charts');
            this.readout = section.querySelector('.rs-readout');
            this.status = section.querySelector('.rs-status');
            this.tbody = section.querySelector('.rs-bucket-table tbody');
            this.hover = null;
            this.timer = null;
            this.failed = null;
            this.charts.hidden = false;
            section.querySelector('details.rs-buckets').open = false;
            this.bindRanges();
            this.bindVisibility();
            new ResizeObserver(() => this.schedule()).observe(this.charts);
            this.render();
            this.wait();
        }

        // --- data ---------------------------------------------------------------------------

        bucketMs() {
            return (this.data.seconds || 10) * 1000;
        }

        count() {
            return this.data.start.length;
        }

        clock(ms, seconds) {
            const options = {hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZone: this.data.time_zone};
            if (seconds) {
                options.second = '2-digit';
            }
            try {
                return new Intl.DateTimeFormat(this.lang, options).format(new Date(ms));
            } catch (error) {  // an unknown time zone name: the browser's own
                delete options.timeZone;
                return new Intl.DateTimeFormat(this.lang, options).format(new Date(ms));
            }
        }

        // Offset of the server's time zone at `ms`, so time ticks fall on round local times.
        offset(ms) {
            try {
                const parts = new Intl.DateTimeFormat('en-US', {
                    timeZone: this.data.time_zone, hourCycle: 'h23', year: 'numeric', month: 'numeric',
                    day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric',
                }).formatToParts(new Date(ms));
                const get = (type) => Number(parts.find((part) => part.type === type).value);
                const local = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
                return local - Math.floor(ms / 1000) * 1000;
            } catch (error) {
                return 0;
            }
        }

        // --- fetching -----------------------------------------------------------------------

        wait() {
            clearTimeout(this.timer);
            this.timer = null;
            if (document.visibilityState === 'hidden') {
                this.status.textContent = this.text.paused;
                return;
            }
            this.status.textContent = this.failed
                ? format(this.text.stale, {error: this.failed})
                : format(this.text.live, {seconds: this.poll / 1000});
            this.timer = setTimeout(() => this.refresh(), this.poll);
        }

        async refresh() {
            clearTimeout(this.timer);
            const asked = this.range;
            try {
                const response = await fetch(`${this.url}?range=${encodeURIComponent(asked)}`, {
                    credentials: 'same-origin',
                    headers: {Accept: 'application/json'},
                });
                if (!response.ok) {
                    throw new Error(`HTTP ${response.status}`);
                }
                if (response.redirected || !(response.headers.get('Content-Type') || '').includes('json')) {
                    throw new Error(this.text.signed_out);  // the admin's login page instead
                }
                const data = await response.json();
                if (asked === this.range) {
                    this.data = data;
                    this.failed = null;
                    this.render();
                }
            } catch (error) {
                this.failed = error.message;
            }
            this.wait();
        }

        bindVisibility() {
            document.addEventListener('visibilitychange', () => {
                if (document.visibilityState === 'hidden') {
                    this.wait();  // stops the timer
                } else {
                    this.refresh();
                }
            });
        }

        bindRanges() {
            for (const link of this.section.querySelectorAll('.rs-ranges a[data-range]')) {
                link.addEventListener('click', (event) => {
                    event.preventDefault();
                    this.range = link.dataset.range;
                    for (const other of this.section.querySelectorAll('.rs-ranges a')) {
                        const current = other === link;
                        other.classList.toggle('rs-current', current);
                        if (current) {
                            other.setAttribute('aria-current', 'true');
                        } else {
                            other.removeAttribute('aria-current');
                        }
                    }
                    history.replaceState(null, '', link.href);
                    this.refresh();
                });
            }
        }

        // --- drawing ------------------------------------------------------------------------

        schedule() {
            if (!this.frame) {
                this.frame = requestAnimationFrame(() => {
                    this.frame = null;
                    this.draw();
                });
            }
        }

        render() {
            this.section.dataset.since = this.data.since;
            this.section.dataset.until = this.data.until;
            const per = this.data.seconds === 60 ? this.text.per_60 : this.text.per_10;
            for (const unit of this.section.querySelectorAll('[data-unit="per"]')) {
                unit.textContent = per;
            }
            this.draw();
            this.table();
            this.read(this.hover);
        }

        draw() {
            for (const figure of this.charts.querySelectorAll('figure[data-chart]')) {
                const plot = figure.querySelector('.rs-plot');
                const width = Math.max(240, Math.floor(plot.clientWidth));
                const svg = node('svg', {
                    class: 'rs-svg', width: width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`,
                    role: 'img', 'aria-label': figure.querySelector('figcaption strong').textContent,
                });
                const frame = this.frame_for(width);
                this.bands(svg, frame);
                const series = this[`series_${figure.dataset.chart}`](frame);
                this.yAxis(svg, frame, series);
                this.xAxis(svg, frame);
                for (const draw of series.draws) {
                    draw(svg);
                }
                this.marks(svg, frame);
                for (const words of svg.querySelectorAll('.rs-limit-label')) {
                    svg.appendChild(words);  // over the state-change lines
                }
                if (!series.any) {
                    node('text', {class: 'rs-empty-note', x: MARGIN.left + frame.w / 2, y: MARGIN.top + frame.h / 2, 'text-anchor': 'middle'}, svg, series.empty);
                }
                node('line', {class: 'rs-cross', x1: -10, x2: -10, y1: MARGIN.top, y2: MARGIN.top + frame.h}, svg);
                node('rect', {class: 'rs-hit', x: MARGIN.left, y: MARGIN.top, width: frame.w, height: frame.h}, svg);
                svg.addEventListener('pointermove', (event) => this.point(event, frame));
                svg.addEventListener('pointerleave', () => this.point(null, frame));
                plot.replaceChildren(svg);
            }
            this.cross(this.hover);
        }

        frame_for(width) {
            const since = this.data.since, until = this.data.until;
            const w = width - MARGIN.left - MARGIN.right, h = HEIGHT - MARGIN.top - MARGIN.bottom;
            return {
                w, h,
                x: (ms) => MARGIN.left + ((ms - since) / (until - since)) * w,
                t: (x) => since + ((x - MARGIN.left) / w) * (until - since),
            };
        }

        // The y scale of a chart and its grid; `series.max` is the data's top, `series.unit` a suffix.
        yAxis(svg, frame, series) {
            const values = ticks(series.max, 4, series.integer);
            const top = series.fixed || values[values.length - 1];
            frame.y = (value) => MARGIN.top + frame.h - (value / top) * frame.h;
            const shown = series.fixed ? [0, 25, 50, 75, 100] : values;
            for (const value of shown) {
                const y = frame.y(value);
                node('line', {class: value === 0 ? 'rs-axis' : 'rs-grid', x1: MARGIN.left, x2: MARGIN.left + frame.w, y1: y, y2: y}, svg);
                node('text', {class: 'rs-tick', x: MARGIN.left - 6, y: y + 4, 'text-anchor': 'end'}, svg, series.label(value));
            }
        }

        xAxis(svg, frame) {
            const since = this.data.since, until = this.data.until;
            const step = (TIME_STEPS.find((m) => (frame.w / ((until - since) / (m * MINUTE))) >= 90) || 720) * MINUTE;
            const offset = this.offset(since);
            let at = Math.ceil((since + offset) / step) * step - offset;
            for (; at <= until; at += step) {
                const x = frame.x(at);
                node('line', {class: 'rs-axis', x1: x, x2: x, y1: MARGIN.top + frame.h, y2: MARGIN.top + frame.h + 4}, svg);
                if (x > MARGIN.left + 20 && x < MARGIN.left + frame.w - 20) {
                    node('text', {class: 'rs-tick', x, y: HEIGHT - 6, 'text-anchor': 'middle'}, svg, this.clock(at));
                }
            }
            node('line', {class: 'rs-axis', x1: MARGIN.left, x2: MARGIN.left, y1: MARGIN.top, y2: MARGIN.top + frame.h}, svg);
        }

        // Shading while the circuit was not closed, from the state at the range's start on.
        bands(svg, frame) {
            let state = this.data.initial, since = this.data.since;
            const spans = [];
            for (const change of this.data.transitions) {
                spans.push([state, since, change.at]);
                state = change.to;
                since = change.at;
            }
            spans.push([state, since, this.data.until]);
            for (const [band, from, to] of spans) {
                if (NOT_CLOSED.includes(band) && to > from) {
                    const x = frame.x(from);
                    node('rect', {class: `rs-band rs-t-${band}`, x, y: MARGIN.top, width: Math.max(1, frame.x(to) - x), height: frame.h}, svg);
                }
            }
        }

        marks(svg, frame) {
            for (const change of this.data.transitions) {
                const x = frame.x(change.at);
                const line = node('line', {class: `rs-transition rs-t-${change.to}`, x1: x, x2: x, y1: MARGIN.top, y2: MARGIN.top + frame.h}, svg);
                node('title', {}, line, `${this.clock(change.at, true)} ${change.label} → ${this.data.states[change.to] || change.to}`);
            }
        }

        // Stacked bars: `layers` is [[css class, values], ...], bottom first; one path per layer.
        bars(frame, layers) {
            const width = Math.max(1, frame.x(this.data.since + this.bucketMs()) - frame.x(this.data.since));
            const gap = width > 4 ? 1 : 0;
            return (svg) => {
                const base = new Array(this.count()).fill(0);
                for (const [cls, values] of layers) {
                    let d = '';
                    values.forEach((value, i) => {
                        if (value > 0) {
                            const x = frame.x(this.data.start[i]);
                            const y0 = frame.y(base[i]), y1 = frame.y(base[i] + value);
                            d += `M${x.toFixed(1)} ${y0.toFixed(1)}V${y1.toFixed(1)}h${(width - gap).toFixed(2)}V${y0.toFixed(1)}Z`;
                            base[i] += value;
                        }
                    });
                    if (d) {
                        node('path', {class: cls, d}, svg);
                    }
                }
            };
        }

        // A line through the buckets' centres, broken where a value is missing.
        line(frame, cls, values) {
            const half = this.bucketMs() / 2;
            return (svg) => {
                let d = '', open = false;
                values.forEach((value, i) => {
                    if (value === null || value === undefined) {
                        open = false;
                        return;
                    }
                    const x = frame.x(this.data.start[i] + half).toFixed(1), y = frame.y(value).toFixed(1);
                    d += open ? `L${x} ${y}` : `M${x} ${y}h0`;
                    open = true;
                });
                if (d) {
                    node('path', {class: `rs-line ${cls}`, d}, svg);
                }
            };
        }

        limit(frame, value, label) {
            return (svg) => {
                const y = frame.y(value);
                node('line', {class: 'rs-limit', x1: MARGIN.left, x2: MARGIN.left + frame.w, y1: y, y2: y}, svg);
                const below = y - 16 < MARGIN.top;  // no room above the line: write under it
                node('text', {class: 'rs-limit-label', x: MARGIN.left + frame.w - 4, y: below ? y + 13 : y - 4, 'text-anchor': 'end'}, svg, label);
            };
        }

        series_calls(frame) {
            const d = this.data;
            const ok = d.calls.map((calls, i) => calls - d.failures[i]);
            return {
                max: Math.max(0, ...d.calls), integer: true, any: d.calls.some((v) => v > 0),
                empty: this.text.empty_calls, label: (v) => this.number.format(v),
                draws: [this.bars(frame, [['rs-bar rs-s-ok', ok], ['rs-bar rs-s-fail', d.failures]])],
            };
        }

        series_rate(frame) {
            const d = this.data;
            const rate = d.calls.map((calls, i) => (calls ? (100 * d.failures[i]) / calls : null));
            const draws = [this.line(frame, 'rs-s-rate', rate)];
            if (d.failure_rate_threshold) {
                draws.unshift(this.limit(frame, d.failure_rate_threshold, format(this.text.trips_at, {value: `${d.failure_rate_threshold} %`})));
            }
            return {max: 100, fixed: 100, any: d.calls.some((v) => v > 0), empty: this.text.empty_calls, label: (v) => `${v} %`, draws};
        }

        series_latency(frame) {
            const d = this.data;
            const top = Math.max(0, ...[...d.p50_ms, ...d.p95_ms, ...d.p99_ms].filter((v) => v !== null));
            const slow = d.slow_call_ms;
            const fits = slow && (top === 0 || slow <= top * 4);
            const draws = ['p50_ms', 'p95_ms', 'p99_ms'].map((key) => this.line(frame, `rs-s-${key.slice(0, 3)}`, d[key]));
            if (fits) {
                draws.unshift(this.limit(frame, slow, format(this.text.slow_above, {value: this.ms(slow)})));
            } else if (slow) {
                draws.push((svg) => node('text', {class: 'rs-limit-label', x: MARGIN.left + frame.w - 4, y: MARGIN.top + 12, 'text-anchor': 'end'}, svg,
                    format(this.text.off_scale, {what: format(this.text.slow_above, {value: this.ms(slow)})})));
            }
            return {max: Math.max(top, fits ? slow : 0), any: top > 0, empty: this.text.empty_latency, label: (v) => this.ms(v), draws};
        }

        series_rejected(frame) {
            const d = this.data;
            const total = d.rejected_open.map((v, i) => v + d.rejected_bulkhead[i]);
            return {
                max: Math.max(0, ...total), integer: true, any: total.some((v) => v > 0),
                empty: this.text.empty_rejected, label: (v) => this.number.format(v),
                draws: [this.bars(frame, [['rs-bar rs-s-open', d.rejected_open], ['rs-bar rs-s-bulkhead', d.rejected_bulkhead]])],
            };
        }

        ms(value) {
            return value >= 1000 ? `${this.number.format(value / 1000)} s` : `${this.number.format(value)} ms`;
        }

        // --- hover and readout --------------------------------------------------------------

        point(event, frame) {
            if (!event) {
                this.hover = null;
            } else {
                const rect = event.currentTarget.getBoundingClientRect();
                const t = frame.t(event.clientX - rect.left);
                const i = this.data.start.findIndex((start) => t >= start && t < start + this.bucketMs());
                this.hover = i >= 0 ? this.data.start[i] : null;
            }
            this.cross(this.hover);
            this.read(this.hover);
        }

        cross(at) {
            for (const svg of this.charts.querySelectorAll('svg.rs-svg')) {
                const line = svg.querySelector('.rs-cross');
                const width = Number(svg.getAttribute('width'));
                const frame = this.frame_for(width);
                const x = at === null ? -10 : frame.x(at + this.bucketMs() / 2);
                line.setAttribute('x1', x);
                line.setAttribute('x2', x);
            }
        }

        // The hovered bucket in words, or the whole range's totals.
        read(at) {
            const d = this.data, t = this.text;
            let i = at === null ? -1 : d.start.indexOf(at);
            const sum = (key) => (i >= 0 ? d[key][i] : d[key].reduce((a, b) => a + b, 0));
            const calls = sum('calls'), failures = sum('failures');
            const parts = [];
            let head = t[d.range] || '';
            if (i >= 0) {
                head = `${this.clock(at, true)}–${this.clock(at + this.bucketMs(), true)}`;
            }
            if (calls) {
                parts.push(`${this.number.format(calls)} ${calls === 1 ? t.call : t.calls}`);
                parts.push(`${this.number.format(failures)} ${t.failed} (${this.number.format((100 * failures) / calls)} %)`);
                for (const key of ['slow', 'timeouts']) {
                    if (sum(key)) {
                        parts.push(`${this.number.format(sum(key))} ${t[key]}`);
                    }
                }
            } else {
                parts.push(t.no_calls);
            }
            if (i >= 0 && d.p50_ms[i] !== null) {
                parts.push(`p50 ${this.ms(d.p50_ms[i])}, p95 ${this.ms(d.p95_ms[i])}, p99 ${this.ms(d.p99_ms[i])}`);
            }
            for (const key of ['rejected_open', 'rejected_bulkhead']) {
                if (sum(key)) {
                    parts.push(`${this.number.format(sum(key))} ${t[key]}`);
                }
            }
            const changes = d.transitions.filter((c) => i >= 0 && c.at >= at && c.at < at + this.bucketMs());
            for (const change of changes) {
                parts.push(`${change.label} → ${d.states[change.to] || change.to}`);
            }
            this.readout.replaceChildren();
            const strong = document.createElement('strong');
            strong.textContent = `${head}: `;
            this.readout.append(strong, parts.join(' · '));
        }

        // --- the table (kept for screen readers and for copying numbers) --------------------

        table() {
            const d = this.data, rows = [];
            const cell = (value) => (value === null || value === undefined ? '—' : String(value));
            for (let i = this.count() - 1; i >= 0; i--) {
                if (!(d.calls[i] || d.rejected_open[i] || d.rejected_bulkhead[i])) {
                    continue;
                }
                const tr = document.createElement('tr');
                const rate = d.calls[i] ? `${Math.round((1000 * d.failures[i]) / d.calls[i]) / 10} %` : null;
                const values = [
                    this.stamp(d.start[i]), d.calls[i], d.failures[i], rate, d.slow[i], d.timeouts[i],
                    d.p50_ms[i], d.p95_ms[i], d.p99_ms[i], d.rejected_open[i], d.rejected_bulkhead[i],
                ];
                for (const value of values) {
                    const td = document.createElement('td');
                    td.textContent = cell(value);
                    tr.appendChild(td);
                }
                rows.push(tr);
            }
            if (!rows.length) {
                const tr = document.createElement('tr'), td = document.createElement('td');
                tr.className = 'rs-empty';
                td.colSpan = 11;
                td.textContent = this.text.nothing;
                tr.appendChild(td);
                rows.push(tr);
            }
            this.tbody.replaceChildren(...rows);
        }

        stamp(ms) {
            const options = {
                year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
                second: '2-digit', hourCycle: 'h23', timeZone: this.data.time_zone,
            };
            try {
                const parts = new Intl.DateTimeFormat('en-CA', options).formatToParts(new Date(ms));
                const get = (type) => parts.find((part) => part.type === type).value;
                return `${get('year')}-${get('month')}-${get('day')} ${get('hour')}:${get('minute')}:${get('second')}`;
            } catch (error) {
                return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
            }
        }
    }

    function start() {
        for (const section of document.querySelectorAll('section.rs-outcomes[data-url]')) {
            section.chart = new Chart(section);
        }
    }

    if (document.readyState === 'loading') {
        document.addEventListener('DOMContentLoaded', start);
    } else {
        start();
    }
}
