// The 24-hour charts of one endpoint (GET /api/v1/health/{code}/history), drawn with
// the vendored uPlot (web/static/vendor/uplot-1.6.32, MIT). Times on the axis are
// Asia/Ho_Chi_Minh in 24 h, numbers carry the page language's decimal mark, a minute
// without a measurement is a gap in the line, and a chart with nothing measured in
// the whole window says so in words instead of drawing an empty frame.

import uPlot from './vendor/uplot-1.6.32/uPlot.esm.js';
import { ZONE, el, fill } from './common.js';
import { lang, t } from './i18n.js';
import { formatNumber } from './health_view.js';

const FONT = '12px "Liberation Sans", "Noto Sans", Arial, sans-serif';
const COLOURS = { main: '#0b4f8a', second: '#c77700', quiet: '#7d8b99' };

// What each chart shows: series from the history (`scale` converts units).
export const CHARTS = [
  {
    key: 'rtt', title: 'dash_chart_rtt', unit: ' ms', digits: 0, empty: 'dash_no_data',
    series: [
      { name: 'rtt_ms', label: 'dash_series_call_rtt', colour: COLOURS.main },
      { name: 'bridge_rtt_ms', label: 'dash_series_bridge', colour: COLOURS.second },
      { name: 'network_rtt_ms', label: 'dash_series_net_rtt', colour: COLOURS.quiet, dash: [4, 3] },
    ],
  },
  {
    key: 'loss', title: 'dash_chart_loss', unit: ' %', digits: 2, empty: 'dash_no_data_call',
    series: [
      { name: 'packet_loss_ratio', label: 'dash_series_loss', colour: '#c62828', scale: 100 },
      { name: 'bridge_packet_loss_ratio', label: 'dash_series_bridge', colour: COLOURS.second, scale: 100 },
    ],
  },
  {
    key: 'jitter', title: 'dash_chart_jitter', unit: ' ms', digits: 1, empty: 'dash_no_data_call',
    series: [
      { name: 'jitter_ms', label: 'dash_series_jitter', colour: COLOURS.main },
      { name: 'bridge_jitter_ms', label: 'dash_series_bridge', colour: COLOURS.second },
    ],
  },
  {
    key: 'bitrate', title: 'dash_chart_bitrate', unit: ' kbit/s', digits: 0, empty: 'dash_no_data_bitrate',
    series: [
      { name: 'bitrate_in_bps', label: 'dash_series_in', colour: COLOURS.main, scale: 0.001 },
      { name: 'bitrate_out_bps', label: 'dash_series_out', colour: COLOURS.second, scale: 0.001 },
    ],
  },
  {
    key: 'fps', title: 'dash_chart_fps', unit: '', digits: 1, empty: 'dash_no_data_call',
    series: [
      { name: 'fps', label: 'dash_series_fps', colour: '#2e7d32' },
      { name: 'bridge_fps', label: 'dash_series_bridge', colour: COLOURS.second },
    ],
  },
];

function clock(seconds, withDay = false) {
  const options = { timeZone: ZONE, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
  if (withDay) Object.assign(options, { day: '2-digit', month: '2-digit' });
  return new Intl.DateTimeFormat(lang() === 'en' ? 'en-GB' : 'vi-VN', options).format(new Date(seconds * 1000));
}

/** The x values of a history: seconds since the epoch, one a minute. */
export function timesOf(history) {
  const start = Date.parse(history.from) / 1000;
  return Array.from({ length: history.minutes }, (_, i) => start + i * history.step_seconds);
}

function valuesOf(history, spec) {
  const values = history.series[spec.name];
  if (!values) return null; // a figure this service does not store
  const scale = spec.scale || 1;
  return values.map((v) => (v === null || v === undefined ? null : v * scale));
}

/** One chart's box: its title, and the chart or a "no data" line. Returns {node, plot}. */
export function buildChart(spec, history, times, width) {
  const node = el('figure', { class: 'chart', data: { chart: spec.key } },
    el('figcaption', { class: 'chart-title', text: t(spec.title) }));
  const columns = spec.series.map((s) => valuesOf(history, s));
  const measured = columns.some((values) => values && values.some((v) => v !== null));
  if (!measured) {
    node.dataset.empty = 'true';
    node.append(el('div', { class: 'chart-empty', role: 'note', text: t(spec.empty) }));
    return { node, plot: null };
  }
  const shown = spec.series.filter((_, i) => columns[i] !== null);
  const data = [times, ...columns.filter((values) => values !== null)];
  const number = (v) => (v === null || v === undefined ? '—' : `${formatNumber(v, spec.digits)}${spec.unit}`);
  const options = {
    width,
    height: 150,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), ZONE),
    scales: {
      x: { time: true },
      y: { range: (u, min, max) => [0, max > 0 ? max * 1.15 : 1] },
    },
    axes: [
      {
        font: FONT, stroke: '#5a6b7c', grid: { stroke: '#e6ebf0', width: 1 }, ticks: { stroke: '#d5dde6', width: 1 },
        values: (u, splits) => splits.map((v) => clock(v)),
      },
      {
        font: FONT, stroke: '#5a6b7c', size: 52, grid: { stroke: '#e6ebf0', width: 1 }, ticks: { show: false },
        values: (u, splits) => splits.map((v) => formatNumber(v, v >= 10 ? 0 : spec.digits)),
      },
    ],
    series: [
      { label: t('dash_series_time'), value: (u, v) => (v === null || v === undefined ? '—' : clock(v, true)) },
      ...shown.map((s) => ({
        label: t(s.label), stroke: s.colour, width: 1.5, dash: s.dash, points: { show: false },
        value: (u, v) => number(v),
      })),
    ],
    legend: { show: true, live: true },
    cursor: { drag: { x: true, y: false } },
  };
  const holder = el('div', { class: 'chart-plot' });
  node.append(holder);
  const plot = new uPlot(options, data, holder);
  return { node, plot };
}

/** All the charts of `history` into `container`: `{resize(), destroy()}`. */
export function renderCharts(container, history) {
  const times = timesOf(history);
  fill(container);
  const built = [];
  for (const spec of CHARTS) {
    const box = el('div', { class: 'chart-cell' });
    container.append(box);
    const width = Math.max(240, Math.floor(box.clientWidth || container.clientWidth / 2) - 8);
    const chart = buildChart(spec, history, times, width);
    box.append(chart.node);
    built.push({ box, chart });
  }
  return {
    resize() {
      for (const { box, chart } of built) {
        if (chart.plot) chart.plot.setSize({ width: Math.max(240, box.clientWidth - 8), height: 150 });
      }
    },
    destroy() {
      for (const { chart } of built) if (chart.plot) chart.plot.destroy();
    },
  };
}
