// The cell kinds, and the one place where a configuration's CellKind becomes a cell type: the
// sequence driver is compiled once per cell (sequence.h), chosen once per call.
//
// Included inside namespace fastrnn::<isa> after cell.h.

#include "rnn.h"
#include "lstm.h"
#include "gru.h"

// visit(Cell{}) with the cell type `config` describes; returns what visit returns.
template <class Visitor> inline auto visit_cell(const StackConfig& config, Visitor&& visit) {
    switch (config.kind) {
        case CellKind::rnn:
            return config.relu ? visit(RnnCell<true>{}) : visit(RnnCell<false>{});
        case CellKind::lstm:
            return visit(LstmCell{});
        case CellKind::gru:
            return config.linear_before_reset ? visit(GruCell<true>{}) : visit(GruCell<false>{});
    }
    __builtin_unreachable();   // every CellKind has its case above
}
