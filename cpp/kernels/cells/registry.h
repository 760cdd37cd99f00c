// The cell kinds, and the one place where a configuration's CellKind becomes a cell type: the
// sequence driver is compiled once per cell (sequence.h), chosen once per call. A new cell kind:
// its header here, its case below, its row in common.h's kCellKinds and its bind_<cell>.cpp.
//
// Included inside namespace fastrnn::<isa> after cell.h.

#include "rnn.h"
#include "lstm.h"
#include "gru.h"

// Each cell agrees with what common.h's kCellKinds tells the code outside the kernels.
template <class Cell> constexpr bool matches(CellKind kind) {
    const CellKindInfo& info = kCellKinds[static_cast<int>(kind)];
    return Cell::gate_count == info.gates && Cell::state_parts == info.state_parts;
}
static_assert(matches<RnnCell<false>>(CellKind::rnn) && matches<RnnCell<true>>(CellKind::rnn));
static_assert(matches<LstmCell>(CellKind::lstm));
static_assert(matches<GruCell<false>>(CellKind::gru) && matches<GruCell<true>>(CellKind::gru));

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
