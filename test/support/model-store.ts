import { ModelStoreError } from '../../src/runner/store/errors.js';
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

/** The ModelStoreError a promise rejects with; fails the test if it resolves or rejects otherwise. */
export async function rejection(promise: Promise<unknown>): Promise<ModelStoreError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  if (!(error instanceof ModelStoreError))
    throw new Error(`expected a ModelStoreError, got ${String(error)}`);
  return error;
}
