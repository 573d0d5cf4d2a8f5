#include "textflag.h"

// func hostLoop(n uint32)
// The probe guest's loop, run natively: dec ecx; jnz.
TEXT ·hostLoop(SB),NOSPLIT,$0-4
	MOVL n+0(FP), CX
loop:
	DECL CX
	JNZ loop
	RET
