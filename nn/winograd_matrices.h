/*
 * winograd_matrices.h: the matrices of Winograd's minimal filtering
 * F(4x4, 5x5), internal to nn/, shared by the inference kernel
 * (conv_winograd.c) and the training gradients (conv_winograd_grad.c), so
 * that both compute the same transform.
 *
 * A 4x4 output tile Y of a 5x5 cross-correlation of the 8x8 input patch d
 * with the filter g is
 *   Y = A^T [(G g G^T) * (B^T d B)] A     (* element-wise, on 8x8 points)
 */
#ifndef DIGITD_NN_WINOGRAD_MATRICES_H
#define DIGITD_NN_WINOGRAD_MATRICES_H

enum {
    CW_T = 8,  /* input tile side: CW_O + 5 - 1 */
    CW_O = 4,  /* output tile side */
    CW_P = 64, /* points of a transformed tile, CW_T * CW_T */
};

/* The transforms, from tools/winograd_matrices.py (points 0, 1, -1, 1/2,
 * -2, infinity). Zero entries cost nothing: the kernels' loops are
 * unrolled over these constants, and the compiler drops the terms it sees
 * are zero. */
static const float CW_BT[CW_T][CW_T] = {
    {4, 0, -21, 0, 21, 0, -4, 0},     {0, -4, -4, 17, 17, -4, -4, 0},
    {0, 4, -4, -17, 17, 4, -4, 0},    {0, 4, 8, -5, -10, 1, 2, 0},
    {0, -4, 8, 5, -10, -1, 2, 0},     {0, 2, 1, -10, -5, 8, 4, 0},
    {0, -2, 1, 10, -5, -8, 4, 0},     {0, -4, 0, 21, 0, -21, 0, 4},
};
static const float CW_G[CW_T][5] = {
    {1.0f / 4, 0, 0, 0, 0},
    {1.0f / 18, 1.0f / 18, 1.0f / 18, 1.0f / 18, 1.0f / 18},
    {1.0f / 18, -1.0f / 18, 1.0f / 18, -1.0f / 18, 1.0f / 18},
    {16.0f / 45, 8.0f / 45, 4.0f / 45, 2.0f / 45, 1.0f / 45},
    {16.0f / 45, -8.0f / 45, 4.0f / 45, -2.0f / 45, 1.0f / 45},
    {1.0f / 360, 1.0f / 180, 1.0f / 90, 1.0f / 45, 2.0f / 45},
    {1.0f / 360, -1.0f / 180, 1.0f / 90, -1.0f / 45, 2.0f / 45},
    {0, 0, 0, 0, 1.0f / 4},
};
static const float CW_AT[CW_O][CW_T] = {
    {1, 1, 1, 1, 1, 1, 1, 0},
    {0, 1, -1, 1.0f / 2, -1.0f / 2, 2, -2, 0},
    {0, 1, 1, 1.0f / 4, 1.0f / 4, 4, 4, 0},
    {0, 1, -1, 1.0f / 8, -1.0f / 8, 8, -8, 1},
};

#endif
