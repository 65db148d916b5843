/**
 * What each statistic of a neuron page means, in one line (a tooltip on its name). The activation
 * statistics come twice: exact over kept tokens, and as the paper's code computes them
 * (src/engine/analysis/paperhist.ts), which `universal.csv` carries.
 */
export const STAT_HELP: Readonly<Record<string, string>> = {
  mean_exact: 'mean pre-activation over kept tokens (exact)',
  var_exact: 'variance of the pre-activation over kept tokens (exact)',
  skew_exact: 'skewness of the pre-activation over kept tokens (exact)',
  kurt_exact: 'kurtosis (not excess) of the pre-activation over kept tokens (exact)',
  act_freq: 'activation frequency: share of kept tokens with pre-activation > 0 (exact)',
  sparsity: "the paper's sparsity: share of all tokens with fp16 pre-activation in its histogram's zero bin or above, in effect > −0.098",
  mean: "the paper's mean: from its 257-bin fp16 histogram on [−10, 15], all tokens, tails clipped",
  var: "the paper's variance, from the same histogram",
  skew: "the paper's skewness, from the same histogram",
  kurt: "the paper's kurtosis (not excess), from the same histogram",
};
