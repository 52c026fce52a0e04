import { nodeFileSystem, type StoreFileSystem } from '../../src/runner/store/file-system.js';

/** The real file system, except that writes fail with ENOSPC once `capacity` bytes are written. */
export function diskThatFillsAfter(capacity: number): Partial<StoreFileSystem> {
  let written = 0;
  return {
    async openWritableFile(path, mode) {
      const file = await nodeFileSystem.openWritableFile(path, mode);
      return {
        ...file,
        async write(chunk) {
          if (written + chunk.length > capacity) {
            throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          }
          written += chunk.length;
          await file.write(chunk);
        },
      };
    },
  };
}
