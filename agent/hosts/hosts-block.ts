/**
 * The agent's block in /etc/hosts: alias names → virtual IPs, between two marker lines. Pure. Every byte outside the
 * block is kept as it was; the block is replaced where it stands, appended when there is none, removed on stop.
 *
 * A block is only recognised when it is well formed: the begin marker line, then only lines of the form the agent
 * writes (`<ip><TAB><names>`), then the end marker line, each line ending in LF or CRLF (the last one too). A begin marker without its
 * end marker, or markers around lines the agent did not write, are the user's lines and are kept as they are (an
 * orphan begin marker once made a clean stop delete the user's lines that followed it).
 */
export const BEGIN_MARKER = '# BEGIN ecs-service-connect-agent (managed: do not edit)';
export const END_MARKER = '# END ecs-service-connect-agent';

export interface HostsEntry {
  readonly ip: string;
  readonly names: readonly string[];
}

export function renderHostsBlock(entries: readonly HostsEntry[]): string {
  const lines = [...entries].sort((a, b) => (a.names[0] ?? '').localeCompare(b.names[0] ?? '')).map((e) => `${e.ip}\t${e.names.join(' ')}`);
  return `${BEGIN_MARKER}\n${lines.map((l) => `${l}\n`).join('')}${END_MARKER}\n`;
}

/** A line the agent writes inside its block: an IP address, a tab, names separated by single spaces. */
const ENTRY = /^[0-9A-Fa-f:.]+\t[^\s#]+(?: [^\s#]+)*$/;

interface Line {
  readonly text: string;
  readonly start: number;
  /** Offset after the line's end of line (or the end of the content for a last line without one). */
  readonly end: number;
  readonly eol: '' | '\n' | '\r\n';
}

function splitLines(content: string): Line[] {
  const lines: Line[] = [];
  let start = 0;
  while (start < content.length) {
    const nl = content.indexOf('\n', start);
    const end = nl < 0 ? content.length : nl + 1;
    const crlf = nl > start && content[nl - 1] === '\r';
    const text = content.slice(start, nl < 0 ? end : crlf ? nl - 1 : nl);
    lines.push({ text, start, end, eol: nl < 0 ? '' : crlf ? '\r\n' : '\n' });
    start = end;
  }
  return lines;
}

export interface BlockSpan {
  readonly start: number;
  readonly end: number;
  /** The block's own line ending, kept when it is replaced. */
  readonly eol: '\n' | '\r\n';
}

/** Every well-formed block in `content`, in order. */
export function findHostsBlocks(content: string): BlockSpan[] {
  const lines = splitLines(content);
  const blocks: BlockSpan[] = [];
  for (let i = 0; i < lines.length; i++) {
    const begin = lines[i];
    if (begin === undefined || begin.text !== BEGIN_MARKER || begin.eol === '') continue;
    let j = i + 1;
    while (j < lines.length && ENTRY.test(lines[j]?.text ?? '') && lines[j]?.eol !== '') j++;
    const end = lines[j];
    if (end === undefined || end.text !== END_MARKER || end.eol === '') continue;
    blocks.push({ start: begin.start, end: end.end, eol: begin.eol });
    i = j;
  }
  return blocks;
}

export function withEol(block: string, eol: '\n' | '\r\n'): string {
  return eol === '\n' ? block : block.replace(/\r?\n/g, '\r\n');
}

/**
 * `content` with the block set to `block` (null removes it). Lines outside well-formed blocks are untouched. The
 * first well-formed block is replaced where it stands (keeping its line ending); any further well-formed block (left
 * by an earlier agent that missed the first) is removed; with none, the block is appended, with CRLF line endings
 * when the file uses them.
 */
export function applyHostsBlock(content: string, block: string | null): string {
  const blocks = findHostsBlocks(content);
  if (blocks.length > 0) {
    let out = '';
    let at = 0;
    for (const [i, b] of blocks.entries()) {
      out += content.slice(at, b.start);
      if (i === 0 && block !== null) out += withEol(block, b.eol);
      at = b.end;
    }
    return out + content.slice(at);
  }
  if (block === null) return content;
  const eol = fileEol(content);
  const sep = content === '' || content.endsWith('\n') ? '' : eol;
  return `${content}${sep}${withEol(block, eol)}`;
}

/** The line ending of a file: CRLF when its first line ends in CRLF. */
export function fileEol(content: string): '\n' | '\r\n' {
  const firstNl = content.indexOf('\n');
  return firstNl > 0 && content[firstNl - 1] === '\r' ? '\r\n' : '\n';
}
