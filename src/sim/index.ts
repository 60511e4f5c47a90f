// The simulated provider, as the subpath export `salvo/sim`.
export {};
