/**
 * chart.js under the webview's CSP (no eval, no inline styles: chart.js v4 sets canvas sizes
 * through the CSSOM). Only the pieces used are registered. Every chart follows the theme: it is
 * rebuilt from freshly read CSS variables when the body class changes. After each render the
 * canvas gets `data-drawn="yes"` (animation is off, so the first render is the final picture),
 * which the end-to-end tests wait for.
 */
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineElement,
  LogarithmicScale,
  PointElement,
  ScatterController,
  Tooltip,
  type ChartConfiguration,
  type Plugin,
} from 'chart.js';
import { chartTheme, onThemeChange, type ChartTheme } from './theme';

Chart.register(BarController, BarElement, CategoryScale, LinearScale, LineElement, LogarithmicScale, PointElement, ScatterController, Tooltip, Legend);

const drawn: Plugin = {
  id: 'unDrawnMarker',
  afterRender(chart) {
    chart.canvas.dataset.drawn = 'yes';
  },
};

export interface ThemedChart {
  readonly chart: Chart;
  destroy(): void;
}

/** Common options: no animation, theme fonts and colours on both scales. */
export function baseOptions(t: ChartTheme, x: { title?: string }, y: { title?: string; beginAtZero?: boolean; log?: boolean }): ChartConfiguration['options'] {
  const axis = (title: string | undefined) => ({
    ticks: { color: t.muted, font: { family: t.fontFamily, size: t.fontSize - 1 } },
    grid: { color: t.grid },
    border: { color: t.grid },
    title: title ? { display: true, text: title, color: t.foreground, font: { family: t.fontFamily, size: t.fontSize } } : { display: false },
  });
  return {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    color: t.foreground,
    font: { family: t.fontFamily, size: t.fontSize },
    plugins: {
      legend: { labels: { color: t.foreground, font: { family: t.fontFamily } } },
      tooltip: {
        backgroundColor: t.background,
        titleColor: t.foreground,
        bodyColor: t.foreground,
        borderColor: t.grid,
        borderWidth: 1,
      },
    },
    scales: { x: axis(x.title), y: { ...axis(y.title), ...(y.log ? { type: 'logarithmic' } : { beginAtZero: y.beginAtZero ?? false }) } },
  } as ChartConfiguration['options'];
}

/** Creates a chart from `build(theme)` and rebuilds it whenever the theme changes. */
export function themedChart(canvas: HTMLCanvasElement, build: (t: ChartTheme) => ChartConfiguration): ThemedChart {
  const make = (): Chart => {
    const config = build(chartTheme());
    config.plugins = [...(config.plugins ?? []), drawn];
    return new Chart(canvas, config);
  };
  let chart = make();
  const off = onThemeChange(() => {
    chart.destroy();
    delete canvas.dataset.drawn;
    chart = make();
  });
  return {
    get chart() {
      return chart;
    },
    destroy() {
      off();
      chart.destroy();
    },
  };
}

/** A canvas inside a sized box (chart.js `responsive` needs a sized parent), with a text alternative. */
export function chartBox(label: string, description: string, cls = 'chart'): { box: HTMLElement; canvas: HTMLCanvasElement } {
  const box = document.createElement('div');
  box.className = cls;
  const canvas = document.createElement('canvas');
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', `${label}. ${description}`);
  canvas.textContent = description;
  box.append(canvas);
  return { box, canvas };
}
