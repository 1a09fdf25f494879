/* The rational-quadratic spline's training step, one pass per layer (flowmix.flows.spline_native).
 *
 * The same mathematics as flowmix.flows.spline._FusedSpline, element by element. torch computes
 * the bins' softmax shares (S, 2B, D, N: widths, then heights) and the inner knot derivatives
 * (S, B - 1, D, N) in a few vectorised calls; for each stacked flow s and point (d, n) this finds
 * x's bin and evaluates the spline, and the backward recomputes the bin instead of saving it. At
 * the sizes of a small fit the torch version costs about a hundred small tensor operations per
 * layer, each more in dispatch than in arithmetic; here it is one call. The file includes itself
 * once per floating type.
 */
#ifndef T

#include <math.h>
#include <stdint.h>

/* The spline's smallest bin width and height (flowmix.flows.spline's). */
typedef struct {
    double width, height;
} spline_minima;

#define T float
#define NAME(x) x##_f32
#define EXP expf
#define LOG logf
#include __FILE__
#undef T
#undef NAME
#undef EXP
#undef LOG

#define T double
#define NAME(x) x##_f64
#define EXP exp
#define LOG log
#include __FILE__

#else

/* What one point's spline needs from its bin, for the value and for the gradients. */
typedef struct {
    int64_t k;
    T p_k, p_below, q_k, q_below, d_low, d_high, y_low;
    T width, height, slope, curvature, xi, between, denominator, rise, bracket;
} NAME(spline_bin);

/* The bin of t (in [-1, 1]) and its quantities; shares and slopes at stride `stride` per entry. */
static void NAME(locate)(const T *shares, const T *slopes, int64_t stride, int64_t n_bins, T t,
                         const spline_minima *m, NAME(spline_bin) *b) {
    const T *p = shares, *q = shares + n_bins * stride;
    const T width_share = (T)(2 * (1 - m->width * n_bins));
    /* Inner knot j + 1 at 2 (MIN (j + 1) + share * sum_{i<=j} p_i) - 1; k counts those <= t. The
     * cumulative sums run in double, as torch's CPU cumsum accumulates. */
    double below = 0;
    int64_t k = 0;
    for (int64_t j = 0; j < n_bins - 1; ++j) {
        below += p[j * stride];
        k += t >= (T)below * width_share + (T)(2 * m->width * (j + 1) - 1);
    }
    double p_below = 0, q_below = 0;
    for (int64_t j = 0; j < k; ++j) {
        p_below += p[j * stride];
        q_below += q[j * stride];
    }
    b->k = k;
    b->p_k = p[k * stride];
    b->q_k = q[k * stride];
    /* As torch: the cumulative sum up to bin k (rounded), less bin k's own share. */
    b->p_below = (T)(p_below + b->p_k) - b->p_k;
    b->q_below = (T)(q_below + b->q_k) - b->q_k;
    /* Knot derivatives with the boundary knots' 1 at both ends: bin k runs from knot k to k + 1. */
    b->d_low = k == 0 ? 1 : slopes[(k - 1) * stride];
    b->d_high = k == n_bins - 1 ? 1 : slopes[k * stride];

    T share = (T)(1 - m->width * n_bins);
    const T x_low = 2 * ((T)m->width * (T)k + share * b->p_below) - 1;
    b->width = 2 * ((T)m->width + share * b->p_k);
    share = (T)(1 - m->height * n_bins);
    b->y_low = 2 * ((T)m->height * (T)k + share * b->q_below) - 1;
    b->height = 2 * ((T)m->height + share * b->q_k);
    b->slope = b->height / b->width;
    b->curvature = b->d_high + b->d_low - 2 * b->slope;
    const T xi = (t - x_low) / b->width;
    b->xi = xi < 0 ? 0 : (xi > 1 ? 1 : xi);
    b->between = b->xi * (1 - b->xi);
    b->denominator = b->slope + b->curvature * b->between;
    b->rise = (b->slope * b->xi * b->xi + b->d_low * b->between) / b->denominator;
    b->bracket = b->d_high * b->xi * b->xi + 2 * b->slope * b->between + b->d_low * (1 - b->xi) * (1 - b->xi);
}

static int NAME(inside)(T x) { return x >= -1 && x <= 1; } /* false for NaN too: the identity */

/* y = spline(x) inside [-1, 1], x outside; log_det = log|dy/dx| (0 outside). */
void NAME(rq_forward)(const T *x, const T *shares, const T *slopes, T *y, T *log_det, int64_t n_stack,
                      int64_t n_bins, int64_t n_per_flow, double min_width, double min_height) {
    const spline_minima m = {min_width, min_height};
    NAME(spline_bin) b;
    for (int64_t s = 0; s < n_stack; ++s) {
        const T *flow_shares = shares + s * 2 * n_bins * n_per_flow;
        const T *flow_slopes = slopes + s * (n_bins - 1) * n_per_flow;
        for (int64_t e = 0; e < n_per_flow; ++e) {
            const int64_t at = s * n_per_flow + e;
            if (!NAME(inside)(x[at])) {
                y[at] = x[at];
                log_det[at] = 0;
                continue;
            }
            NAME(locate)(flow_shares + e, flow_slopes + e, n_per_flow, n_bins, x[at], &m, &b);
            y[at] = b.y_low + b.height * b.rise;
            log_det[at] = LOG(b.slope * b.slope * b.bracket) - 2 * LOG(b.denominator);
        }
    }
}

/* Gradients of (y, log_det) with respect to x and to the MADE's output params (S, 3B - 1, D, N),
 * whose inner-derivative rows (2B onwards) are read for softplus' derivative, the sigmoid. */
void NAME(rq_backward)(const T *x, const T *shares, const T *slopes, const T *params, const T *grad_y,
                       const T *grad_log_det, T *grad_x, T *grad_params, int64_t n_stack, int64_t n_bins,
                       int64_t n_per_flow, double min_width, double min_height, double identity_offset) {
    const spline_minima m = {min_width, min_height};
    const int64_t n_params = 3 * n_bins - 1;
    const T width_share = (T)(2 * (1 - m.width * n_bins));
    const T height_share = (T)(2 * (1 - m.height * n_bins));
    NAME(spline_bin) b;
    for (int64_t s = 0; s < n_stack; ++s) {
        const T *flow_shares = shares + s * 2 * n_bins * n_per_flow;
        const T *flow_slopes = slopes + s * (n_bins - 1) * n_per_flow;
        for (int64_t e = 0; e < n_per_flow; ++e) {
            const int64_t at = s * n_per_flow + e;
            const T *p = flow_shares + e, *q = flow_shares + n_bins * n_per_flow + e;
            const T *raw = params + s * n_params * n_per_flow + e;
            T *grad = grad_params + s * n_params * n_per_flow + e;
            if (!NAME(inside)(x[at])) { /* the identity: only x's gradient passes */
                grad_x[at] = grad_y[at];
                for (int64_t j = 0; j < n_params; ++j) grad[j * n_per_flow] = 0;
                continue;
            }
            NAME(locate)(flow_shares + e, flow_slopes + e, n_per_flow, n_bins, x[at], &m, &b);
            const T gy = grad_y[at], gl = grad_log_det[at];
            const T xi = b.xi, between = b.between, slope = b.slope, rise = b.rise;
            const T over_den = gy * b.height / b.denominator;
            const T per_bracket = gl / b.bracket;
            const T per_den = 2 * gl / b.denominator;
            const T tilt = 1 - 2 * xi;
            const T g_slope = over_den * (xi * xi - rise * (1 - 2 * between)) + 2 * gl / slope +
                              2 * per_bracket * between - per_den * (1 - 2 * between);
            const T g_d_low = (over_den * (1 - rise) - per_den) * between + per_bracket * (1 - xi) * (1 - xi);
            const T g_d_high = -(over_den * rise + per_den) * between + per_bracket * xi * xi;
            const T g_xi = over_den * (2 * slope * xi + (b.d_low - rise * b.curvature) * tilt) +
                           2 * per_bracket * (b.d_high * xi + slope * tilt - b.d_low * (1 - xi)) -
                           per_den * b.curvature * tilt;
            const T g_t = g_xi / b.width;
            const T g_width = -(g_slope * slope + g_xi * xi) / b.width;
            const T g_height = gy * rise + g_slope / b.width;
            grad_x[at] = g_t;
            /* Through the softmaxes: d share_i / d raw_j = share_i (delta_ij - share_j); bin k's own
             * share gets g_k, the bins below it (through their sum) g_below, those above nothing. */
            const T g_pk = width_share * g_width, g_pbelow = -width_share * g_t;
            const T g_qk = height_share * g_height, g_qbelow = height_share * gy;
            const T mean_p = g_pbelow * b.p_below + g_pk * b.p_k;
            const T mean_q = g_qbelow * b.q_below + g_qk * b.q_k;
            for (int64_t i = 0; i < n_bins; ++i) {
                const T reach_p = i < b.k ? g_pbelow : (i == b.k ? g_pk : 0);
                const T reach_q = i < b.k ? g_qbelow : (i == b.k ? g_qk : 0);
                grad[i * n_per_flow] = p[i * n_per_flow] * (reach_p - mean_p);
                grad[(n_bins + i) * n_per_flow] = q[i * n_per_flow] * (reach_q - mean_q);
            }
            /* Inner knot j + 1 carries d_low of bin j + 1 and d_high of bin j; softplus' = sigmoid.
             * Only the two knots of bin k have a gradient. */
            for (int64_t j = 0; j < n_bins - 1; ++j) grad[(2 * n_bins + j) * n_per_flow] = 0;
            for (int64_t knot = b.k; knot <= b.k + 1; ++knot) {
                if (knot == 0 || knot == n_bins) continue; /* the boundary knots are fixed */
                const int64_t row = (2 * n_bins + knot - 1) * n_per_flow;
                const T g = knot == b.k ? g_d_low : g_d_high;
                grad[row] = g / (1 + EXP(-(raw[row] + (T)identity_offset)));
            }
        }
    }
}

#endif
