#!/usr/bin/env python3
"""winograd_matrices.py: derives and checks the matrices of Winograd's
minimal filtering F(4x4, 5x5) used by nn/conv_winograd.c (or F(2x2, 5x5),
its predecessor, with WINOGRAD_M=2 in the environment) (not part of the
build; standard library only, exact rational arithmetic).

  Y (2x2) = A^T [ (G g G^T) * (B^T d B) ] A
  g (5x5) filter, d (6x6) input tile, G (6x5), B^T (6x6), A^T (2x6).

Construction (Toom-Cook): the 1-D correlation y_i = sum_k g_k d_{i+k}
(i = 0, 1) is the transpose of the product s(x) = g(x) h(x) of a degree-4
and a degree-1 polynomial. s has 6 coefficients; it is known from its
values at 5 finite points a_j and its leading coefficient (the point
"infinity"): s = V^-1 [(G g) * (H h)], with G (6x5) and H (6x2) the
Vandermonde rows of the points (infinity: the last unit row) and V (6x6)
the full one. Transposing gives y = H^T [(G g) * (V^-T d)], so A^T = H^T,
B^T = V^-T. A diagonal scaling is moved from B^T into G so that B^T holds
small integers and G the fractions (the filter transform is done once per
call, the input transform once per tile).

Run: python3 tools/winograd_matrices.py [points...]   e.g. 0 1 -1 1/2 -2
Prints the matrices as C initialisers, checks Y against a direct
correlation exactly (rationals) and estimates the float32 error of the
whole algorithm for a 32-channel sum, for the chosen point set and a few
others, so the choice in conv_winograd.c can be re-checked.
"""
import random
import struct
import sys
from fractions import Fraction as Fr

import os
M, R = int(os.environ.get("WINOGRAD_M", "4")), 5  # outputs per tile side, filter side
N = M + R - 1  # input tile side: 8 for F(4x4, 5x5)


def vander(points, cols):
    """Rows [a^0 .. a^(cols-1)] for the finite points, then the unit row of
    infinity (the leading coefficient)."""
    rows = [[p ** k for k in range(cols)] for p in points]
    rows.append([Fr(0)] * (cols - 1) + [Fr(1)])
    return rows


def inverse(m):
    n = len(m)
    a = [row[:] + [Fr(int(i == j)) for j in range(n)] for i, row in enumerate(m)]
    for c in range(n):
        p = next(r for r in range(c, n) if a[r][c] != 0)
        a[c], a[p] = a[p], a[c]
        piv = a[c][c]
        a[c] = [x / piv for x in a[c]]
        for r in range(n):
            if r != c and a[r][c] != 0:
                f = a[r][c]
                a[r] = [x - f * y for x, y in zip(a[r], a[c])]
    return [row[n:] for row in a]


def transpose(m):
    return [list(r) for r in zip(*m)]


def matmul(a, b):
    return [[sum(a[i][k] * b[k][j] for k in range(len(b))) for j in range(len(b[0]))]
            for i in range(len(a))]


def lcm(a, b):
    from math import gcd
    return a * b // gcd(a, b)


def matrices(points):
    pts = [Fr(p) for p in points]
    assert len(pts) == N - 1 and len(set(pts)) == N - 1
    G = vander(pts, R)            # 6x5
    AT = transpose(vander(pts, M))  # 2x6
    BT = transpose(inverse(vander(pts, N)))  # 6x6
    # Scale each row j of B^T to integers (and coprime), divide G's row j.
    for j in range(N):
        den = 1
        for x in BT[j]:
            den = lcm(den, x.denominator)
        BT[j] = [x * den for x in BT[j]]
        from math import gcd
        g = 0
        for x in BT[j]:
            g = gcd(g, int(x))
        g = g or 1
        BT[j] = [x / g for x in BT[j]]
        s = Fr(den, g)
        G[j] = [x / s for x in G[j]]
    return AT, G, BT


def winograd(AT, G, BT, d, g):
    U = matmul(matmul(G, g), transpose(G))
    V = matmul(matmul(BT, d), transpose(BT))
    P = [[U[i][j] * V[i][j] for j in range(N)] for i in range(N)]
    return matmul(matmul(AT, P), transpose(AT))


def direct(d, g):
    return [[sum(d[i + u][j + v] * g[u][v] for u in range(R) for v in range(R))
             for j in range(M)] for i in range(M)]


def f32(x):
    return struct.unpack("f", struct.pack("f", float(x)))[0]


def mm32(a, b):
    """float32 matrix product, summing left to right, rounding each step."""
    out = []
    for i in range(len(a)):
        row = []
        for j in range(len(b[0])):
            s = 0.0
            for k in range(len(b)):
                s = f32(s + f32(a[i][k] * b[k][j]))
            row.append(s)
        out.append(row)
    return out


def error32(AT, G, BT, trials=60, C=32, seed=1):
    """Worst |winograd32 - exact| / max|exact| over random tiles of a
    C-channel sum, inputs and weights uniform in [-1, 1]."""
    rnd = random.Random(seed)
    at = [[float(x) for x in r] for r in AT]
    g32 = [[f32(x) for x in r] for r in G]
    bt = [[float(x) for x in r] for r in BT]
    worst = 0.0
    for _ in range(trials):
        acc = [[0.0] * N for _ in range(N)]
        exact = [[0.0] * M for _ in range(M)]
        for _c in range(C):
            d = [[f32(rnd.uniform(-1, 1)) for _ in range(N)] for _ in range(N)]
            g = [[f32(rnd.uniform(-1, 1)) for _ in range(R)] for _ in range(R)]
            U = mm32(mm32(g32, g), transpose(g32))
            V = mm32(mm32(bt, d), transpose(bt))
            for i in range(N):
                for j in range(N):
                    acc[i][j] = f32(acc[i][j] + f32(U[i][j] * V[i][j]))
            e = direct(d, g)
            for i in range(M):
                for j in range(M):
                    exact[i][j] += e[i][j]
        y = mm32(mm32(at, acc), transpose(at))
        scale = max(abs(x) for r in exact for x in r)
        for i in range(M):
            for j in range(M):
                worst = max(worst, abs(y[i][j] - exact[i][j]) / (1 + scale))
    return worst


def c_rows(m):
    def fmt(x):
        return str(int(x)) if x.denominator == 1 else "%d.0f / %d" % (x.numerator, x.denominator)
    return ",\n".join("    {" + ", ".join(fmt(x) for x in r) + "}" for r in m)


def main():
    half = Fr(1, 2)
    if M == 2:
        candidates = [[0, 1, -1, half, -2], [0, 1, -1, 2, -2], [0, 1, -1, half, -half],
                      [0, 1, -1, 2, -half], [0, 1, -1, 2, half]]
    else:  # M == 4
        candidates = [[0, 1, -1, half, -half, 2, -2], [0, 1, -1, 2, -2, 3, -3],
                      [0, 1, -1, half, -half, 2, -3], [0, 1, -1, half, -half, 3, -3]]
    chosen = [Fr(s) for s in sys.argv[1:]] or [Fr(p) for p in candidates[0]]
    AT, G, BT = matrices(chosen)
    rnd = random.Random(7)
    for _ in range(5):  # exact check against the direct correlation
        d = [[Fr(rnd.randint(-9, 9)) for _ in range(N)] for _ in range(N)]
        g = [[Fr(rnd.randint(-9, 9)) for _ in range(R)] for _ in range(R)]
        assert winograd(AT, G, BT, d, g) == direct(d, g)
    print("points:", ", ".join(str(p) for p in chosen), "and infinity: exact check passed")
    print("A^T =\n" + c_rows(AT))
    print("G =\n" + c_rows(G))
    print("B^T =\n" + c_rows(BT))
    print("\nestimated float32 error / (1 + max|y|), 32-channel sums:")
    candidates = [chosen] + candidates
    seen = []
    for pts in candidates:
        pts = [Fr(p) for p in pts]
        if pts in seen:
            continue
        seen.append(pts)
        e = error32(*matrices(pts))
        print("  %-28s %.3g" % (", ".join(str(p) for p in pts), e))


if __name__ == "__main__":
    main()
