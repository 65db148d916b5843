/**
 * The ONE module that touches @vscode/webview-ui-toolkit (archived upstream). Every other webview
 * file builds its controls through these functions, so moving to @vscode-elements/elements is a
 * change to this file only. Only the components used are registered (smaller bundle).
 */
import {
  provideVSCodeDesignSystem,
  vsCodeButton,
  vsCodeCheckbox,
  vsCodeDataGrid,
  vsCodeDataGridCell,
  vsCodeDataGridRow,
  vsCodeDivider,
  vsCodeDropdown,
  vsCodeLink,
  vsCodeOption,
  vsCodeProgressRing,
  vsCodeTextField,
} from '@vscode/webview-ui-toolkit';

let registered = false;

/** Defines the toolkit's custom elements (idempotent). */
export function registerToolkit(): void {
  if (registered) return;
  registered = true;
  provideVSCodeDesignSystem().register(
    vsCodeButton(),
    vsCodeCheckbox(),
    vsCodeDataGrid(),
    vsCodeDataGridCell(),
    vsCodeDataGridRow(),
    vsCodeDivider(),
    vsCodeDropdown(),
    vsCodeLink(),
    vsCodeOption(),
    vsCodeProgressRing(),
    vsCodeTextField(),
  );
}

let ids = 0;
const uid = (p: string) => `${p}-${++ids}`;

/** Toolkit controls expose these as properties (FAST form-associated elements). */
type Valued = HTMLElement & { value: string };
type Checkable = HTMLElement & { checked: boolean };

export function button(
  label: string,
  onClick: () => void,
  opts: { appearance?: 'primary' | 'secondary'; ariaLabel?: string; disabled?: boolean; title?: string } = {},
): HTMLElement & { disabled: boolean } {
  const b = document.createElement('vscode-button') as HTMLElement & { disabled: boolean };
  b.textContent = label;
  b.setAttribute('appearance', opts.appearance ?? 'secondary');
  if (opts.ariaLabel) b.setAttribute('aria-label', opts.ariaLabel);
  if (opts.title) b.title = opts.title;
  if (opts.disabled) b.setAttribute('disabled', '');
  b.addEventListener('click', () => {
    if (!b.hasAttribute('disabled')) onClick();
  });
  return b;
}

export function checkbox(label: string, checked: boolean, onChange: (checked: boolean) => void): HTMLElement {
  const c = document.createElement('vscode-checkbox') as Checkable;
  c.textContent = label;
  if (checked) c.setAttribute('checked', '');
  c.addEventListener('change', () => onChange(c.checked));
  return c;
}

export interface Choice {
  value: string;
  label: string;
}

/** A labelled dropdown. */
export function dropdown(
  label: string,
  choices: readonly Choice[],
  value: string,
  onChange: (value: string) => void,
  opts: { disabled?: boolean } = {},
): HTMLElement {
  const wrap = document.createElement('div');
  wrap.className = 'ui-field';
  const id = uid('dd');
  const l = document.createElement('label');
  l.htmlFor = id;
  l.textContent = label;
  const d = document.createElement('vscode-dropdown') as Valued;
  d.id = id;
  d.setAttribute('aria-label', label);
  if (opts.disabled) d.setAttribute('disabled', '');
  for (const c of choices) {
    const o = document.createElement('vscode-option') as Valued;
    o.setAttribute('value', c.value);
    o.textContent = c.label;
    if (c.value === value) o.setAttribute('selected', '');
    d.append(o);
  }
  d.addEventListener('change', () => onChange(d.value));
  wrap.append(l, d);
  return wrap;
}

/** A labelled single-line text field; `onChange` fires on every edit. */
export function textField(
  label: string,
  value: string,
  onChange: (value: string) => void,
  opts: { placeholder?: string; size?: number; invalid?: (value: string) => boolean } = {},
): HTMLElement {
  const wrap = document.createElement('div');
  wrap.className = 'ui-field';
  const id = uid('tf');
  const l = document.createElement('label');
  l.htmlFor = id;
  l.textContent = label;
  const t = document.createElement('vscode-text-field') as Valued;
  t.id = id;
  t.setAttribute('aria-label', label);
  t.setAttribute('value', value);
  if (opts.placeholder) t.setAttribute('placeholder', opts.placeholder);
  if (opts.size) t.setAttribute('size', String(opts.size));
  t.addEventListener('input', () => {
    const bad = opts.invalid?.(t.value) ?? false;
    t.classList.toggle('invalid', bad);
    t.setAttribute('aria-invalid', String(bad));
    onChange(t.value);
  });
  wrap.append(l, t);
  return wrap;
}

/**
 * A badge. Not the toolkit's vscode-badge: its template binds an inline `style` attribute, which
 * the webview CSP (no 'unsafe-inline') blocks; this one is styled by media/webview.css.
 */
export function badge(text: string): HTMLElement {
  const b = document.createElement('span');
  b.className = 'badge';
  b.textContent = text;
  return b;
}

export function divider(): HTMLElement {
  const d = document.createElement('vscode-divider');
  d.setAttribute('role', 'separator');
  return d;
}

/** A link-styled control that runs `onClick` (no navigation). */
export function actionLink(text: string, onClick: () => void, title?: string): HTMLElement {
  const a = document.createElement('vscode-link');
  a.textContent = text;
  a.setAttribute('href', '#');
  if (title) a.title = title;
  a.addEventListener('click', (e) => {
    e.preventDefault();
    onClick();
  });
  return a;
}

export function progressRing(label: string): HTMLElement {
  const p = document.createElement('vscode-progress-ring');
  p.setAttribute('aria-label', label);
  return p;
}

// ---------------------------------------------------------------------------------------------
// Data grid (rows built by hand: the toolkit grid does not sort, page or virtualise by itself)

export interface GridColumn {
  key: string;
  title: string;
  /** Minimum width in px (the grid scrolls sideways rather than squeeze below the sum). */
  minWidth: number;
  numeric?: boolean;
  sortable?: boolean;
}

export interface GridHandle {
  element: HTMLElement;
  /** Replaces the body rows; `cells[r][c]` is plain text. */
  setRows(cells: readonly (readonly string[])[]): void;
  /** Marks the sorted column (aria-sort + arrow). */
  setSort(key: string | null, descending: boolean): void;
}

export function dataGrid(opts: {
  label: string;
  columns: readonly GridColumn[];
  onSort?: (key: string) => void;
  /** A body row was clicked or activated with Enter. */
  onActivate?: (row: number) => void;
  rowTitle?: string;
}): GridHandle {
  const grid = document.createElement('vscode-data-grid');
  grid.setAttribute('aria-label', opts.label);
  grid.setAttribute('generate-header', 'none');
  grid.setAttribute('grid-template-columns', opts.columns.map((c) => `minmax(${c.minWidth}px, 1fr)`).join(' '));
  grid.style.minWidth = `${opts.columns.reduce((s, c) => s + c.minWidth, 0)}px`; // CSSOM: allowed by the CSP
  const header = document.createElement('vscode-data-grid-row');
  header.setAttribute('row-type', 'sticky-header');
  const headCells: HTMLElement[] = [];
  opts.columns.forEach((c, i) => {
    const cell = document.createElement('vscode-data-grid-cell');
    cell.setAttribute('cell-type', 'columnheader');
    cell.setAttribute('grid-column', String(i + 1));
    cell.dataset.key = c.key;
    cell.textContent = c.title;
    if (c.numeric) cell.classList.add('num');
    if (c.sortable) {
      cell.classList.add('sortable');
      cell.setAttribute('aria-sort', 'none');
      cell.title = `Sort by ${c.title}`;
    }
    headCells.push(cell);
    header.append(cell);
  });
  grid.append(header);
  let body: HTMLElement[] = [];

  const sortFrom = (target: EventTarget | null): string | undefined => {
    const cell = (target as HTMLElement | null)?.closest?.('vscode-data-grid-cell[cell-type="columnheader"].sortable') as HTMLElement | null;
    return cell?.dataset.key;
  };
  const rowFrom = (target: EventTarget | null): number | undefined => {
    const row = (target as HTMLElement | null)?.closest?.('vscode-data-grid-row[data-row]') as HTMLElement | null;
    return row ? Number(row.dataset.row) : undefined;
  };
  grid.addEventListener('click', (e) => {
    const key = sortFrom(e.target);
    if (key !== undefined) return opts.onSort?.(key);
    const r = rowFrom(e.target);
    if (r !== undefined) opts.onActivate?.(r);
  });
  grid.addEventListener('keydown', (e) => {
    if (e.key !== 'Enter' && e.key !== ' ') return;
    const active = document.activeElement;
    const key = sortFrom(active);
    if (key !== undefined) {
      e.preventDefault();
      return opts.onSort?.(key);
    }
    const r = rowFrom(active);
    if (r !== undefined && e.key === 'Enter') {
      e.preventDefault();
      opts.onActivate?.(r);
    }
  });

  return {
    element: grid,
    setRows(cells) {
      for (const r of body) r.remove();
      body = cells.map((row, r) => {
        const tr = document.createElement('vscode-data-grid-row');
        tr.dataset.row = String(r);
        if (opts.onActivate) tr.classList.add('clickable');
        if (opts.rowTitle) tr.title = opts.rowTitle;
        row.forEach((text, i) => {
          const td = document.createElement('vscode-data-grid-cell');
          td.setAttribute('grid-column', String(i + 1));
          if (opts.columns[i]?.numeric) td.classList.add('num');
          td.textContent = text;
          tr.append(td);
        });
        return tr;
      });
      grid.append(...body);
    },
    setSort(key, descending) {
      for (const cell of headCells) {
        const c = opts.columns.find((x) => x.key === cell.dataset.key)!;
        if (!c.sortable) continue;
        const on = c.key === key;
        cell.setAttribute('aria-sort', on ? (descending ? 'descending' : 'ascending') : 'none');
        cell.textContent = c.title + (on ? (descending ? ' ▼' : ' ▲') : '');
      }
    },
  };
}
