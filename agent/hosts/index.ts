export { BEGIN_MARKER, END_MARKER, renderHostsBlock, findHostsBlocks, withEol, applyHostsBlock, fileEol } from './hosts-block.ts';
export type { HostsEntry, BlockSpan } from './hosts-block.ts';
export { writeHostsBlock } from './hosts-file.ts';
