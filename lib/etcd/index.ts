export * from './client';
export * from './commands';
export * from './errors';
export * from './ids';
export * from './parsers';
export { localEtcdRunner } from './local-runner';
